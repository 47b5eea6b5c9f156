-- single.lua — one reading per request, every reading with its own timestamp.
--
--   wrk ... -s single.lua URL -- MODE BASE_MS [TOKEN|SERIES]
--
-- MODE  ss      POST /api/v1/data, text/plain line format, X-Auth-Token TOKEN
--       influx  POST /write?db=bench, line protocol `m,device=SERIES temp=V TS_NS`
--       nginx   POST / with the same body as `ss` (nginx answers 204 to it)
-- BASE_MS  first timestamp (ms). Thread t sends BASE_MS + n*STRIDE + t for its
--          n-th request, so no two requests of a run share a timestamp (a
--          reading with the same device+channel+ts would replace the earlier
--          one and the stored count would not match).
--
-- No response() callback: defining one makes wrk hand every answer's headers
-- and body to Lua, which on a 2-core machine costs the client ~20% of its
-- rate. wrk itself counts answers with status >= 400 (errors.status, the
-- "Non-2xx or 3xx responses" line); run.sh checks the stored count instead.
--
-- done() prints one machine-readable line, `RESULT key=value ...`.

local STRIDE = 64 -- more than the threads wrk is ever given here

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  base = tonumber(args[2])
  n = 0
  if mode == "ss" then
    path = "/api/v1/data"
    headers = { ["Content-Type"] = "text/plain", ["X-Auth-Token"] = args[3] }
  elseif mode == "influx" then
    path = "/write?db=bench"
    series = args[3]
    headers = { ["Content-Type"] = "text/plain" }
  elseif mode == "nginx" then
    path = "/"
    headers = { ["Content-Type"] = "text/plain" }
  else
    error("single.lua: unknown mode " .. tostring(mode))
  end
end

function request()
  n = n + 1
  local ts = string.format("%.0f", base + n * STRIDE + tid)
  local value = (n % 400) / 10
  local body
  if mode == "influx" then
    body = "m,device=" .. series .. " temp=" .. value .. " " .. ts .. "000000"
  else
    body = "temp=" .. value .. " " .. ts
  end
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d rps=%.1f " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d " ..
    "p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
