-- POST /v1/users, one new row per request, with an email made unique by a
-- run tag, the wrk thread and a counter.
--
--   wrk -t1 -c64 -d10s --latency -s bench/wrk/post_users.lua http://127.0.0.1:8080 -- RUN_TAG
--
-- Counts answers by status; done() prints them ("status 201: N").

local counter, tag = 0, "run"
id = id or 0
statuses = {}  -- global: done() reads it with thread:get
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  tag = args[1] or tostring(os.time())
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"name":"Bench User %d","email":"bench-%s-%d-%d@example.com","country":"US",'
      .. '"created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z"}',
    counter, tag, id, counter)
  return wrk.format(nil, "/v1/users", nil, body)
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
