-- A read-mostly mix over products: 95% reads, 5% writes.
--   reads: half GET /v1/products/{id}, half GET /v1/products?page=N
--          (limit 20, so pages 1..ceil(n/20)); ids and pages Zipf-distributed
--          with exponent s over ranks 1..n (rank k is id k, page k);
--   writes: PATCH /v1/products/{id} {"stock": m}, the id Zipf-chosen too.
--
--   wrk -t1 -c64 -d30s --latency -s bench/wrk/mix.lua http://127.0.0.1:8080 -- 5000 1.1 42 0.05
--
-- Arguments: n (5000), s (1.1), seed (42), write share (0.05).
-- Counts, per kind of request, the answers by status, and for 2xx GETs the
-- `cache;desc=...` of Server-Timing (hit, miss, shared, stale, ...);
-- done() prints lines "count KIND STATE N" for a script to add up.

local n, s, share = 5000, 1.1, 0.05
local cdf_ids, cdf_pages = {}, {}
counts = {}  -- global: done() reads it with thread:get
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
end

local function zipf_cdf(size)
  local cdf, total = {}, 0
  for k = 1, size do
    total = total + 1 / (k ^ s)
    cdf[k] = total
  end
  for k = 1, size do
    cdf[k] = cdf[k] / total
  end
  return cdf
end

local function draw(cdf)
  local u = math.random()
  local lo, hi = 1, #cdf
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

function init(args)
  n = tonumber(args[1] or "5000")
  s = tonumber(args[2] or "1.1")
  math.randomseed(tonumber(args[3] or "42"))
  share = tonumber(args[4] or "0.05")
  cdf_ids = zipf_cdf(n)
  cdf_pages = zipf_cdf(math.ceil(n / 20))
end

local function count(key)
  counts[key] = (counts[key] or 0) + 1
end

-- A response is told apart by its Server-Timing: reads carry
-- `cache;desc=STATE`, write answers none (counted as "other").
function request()
  counter = counter + 1
  local u = math.random()
  if u < share then
    local id = draw(cdf_ids)
    return wrk.format("PATCH", "/v1/products/" .. id,
      { ["Content-Type"] = "application/json" },
      string.format('{"stock":%d}', counter % 1000))
  elseif u < share + (1 - share) / 2 then
    return wrk.format("GET", "/v1/products/" .. draw(cdf_ids))
  else
    return wrk.format("GET", "/v1/products?page=" .. draw(cdf_pages))
  end
end

function response(status, headers, body)
  local timing = headers["server-timing"] or headers["Server-Timing"] or ""
  local state = string.match(timing, "cache;desc=(%a+)")
  if state then
    count("get " .. state .. " " .. status)
  else
    count("other none " .. status)
  end
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for key, v in pairs(thread:get("counts")) do
      total[key] = (total[key] or 0) + v
    end
  end
  for key, v in pairs(total) do
    io.write(string.format("count %s %d\n", key, v))
  end
end
