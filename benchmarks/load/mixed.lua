-- Mixed traffic for wrk: 70 % case reads, 20 % messages posted, 10 % proposals.
-- READS_ONLY=1 in the environment: reads alone. Case ids come from cases.txt, the token
-- from token.txt (both written by run.py next to this script).
local ids = {}
local token = ""
local reads_only = os.getenv("READS_ONLY") == "1"

function init(args)
  local dir = args[1] or "."
  for line in io.lines(dir .. "/cases.txt") do ids[#ids + 1] = line end
  token = io.open(dir .. "/token.txt"):read("*l")
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

local message = '{"text":"The line drops every evening since Monday."}'
local proposal = '{"changes":[{"op":"data.put","key":"price","label":"New price",' ..
  '"value":{"type":"money","amount":"20.00","currency":"GBP","per":"month"}}]}'

function request()
  local id = ids[math.random(#ids)]
  local path = "/api/v1/cases/" .. id
  local headers = { ["Authorization"] = "Bearer " .. token }
  local roll = math.random(100)
  if reads_only or roll <= 70 then
    return wrk.format("GET", path, headers)
  end
  headers["Content-Type"] = "application/json"
  if roll <= 90 then
    return wrk.format("POST", path .. "/messages", headers, message)
  end
  return wrk.format("POST", path .. "/proposals", headers, proposal)
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("WRK_REPORT") or "wrk-report.json", "w")
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
  out:close()
end
