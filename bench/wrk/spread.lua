-- Spreads requests over ids: every request asks for the path template given
-- after `--`, with `{id}` replaced by a random integer in [low, high].
--
--   wrk -t1 -c64 -d10s --latency -s bench/wrk/spread.lua http://127.0.0.1:8080 \
--       -- '/v1/users/{id}?fields=name,email,profile_picture' 1 10000 42
--
-- Arguments: template, low (default 1), high (default 10000), random seed
-- (default 42, so runs ask for the same ids). Headers given with -H are
-- sent with every request.

local template, low, high

function init(args)
  template = args[1] or error("spread.lua needs a path template with {id}")
  low = tonumber(args[2] or "1")
  high = tonumber(args[3] or "10000")
  math.randomseed(tonumber(args[4] or "42"))
end

function request()
  local path = template:gsub("{id}", tostring(math.random(low, high)))
  return wrk.format(nil, path)
end
