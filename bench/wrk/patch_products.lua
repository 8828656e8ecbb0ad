-- PATCH /v1/products/{id} {"stock": n}, the id uniform in [low, high]
-- (default 1..5000), seeded.
--
--   wrk -t1 -c64 -d10s --latency -s bench/wrk/patch_products.lua http://127.0.0.1:8080 -- 1 5000 42
--
-- Counts answers by status; done() prints them ("status 200: N").

local low, high, counter = 1, 5000, 0
statuses = {}  -- global: done() reads it with thread:get
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  low = tonumber(args[1] or "1")
  high = tonumber(args[2] or "5000")
  math.randomseed(tonumber(args[3] or "42"))
  wrk.method = "PATCH"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local path = "/v1/products/" .. math.random(low, high)
  return wrk.format(nil, path, nil, string.format('{"stock":%d}', counter % 1000))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("status %d: %d\n", status, n))
  end
end
