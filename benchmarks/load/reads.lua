-- Reads for wrk (benchmarks/case_reads.py): MODE=case reads a random seeded case with the
-- API token, MODE=health asks GET /health (the server's floor, same run). Case ids and
-- the token come from cases.txt and token.txt in the directory given after `--`.
local ids = {}
local token = ""
local mode = os.getenv("MODE") or "case"

function init(args)
  local dir = args[1] or "."
  for line in io.lines(dir .. "/cases.txt") do ids[#ids + 1] = line end
  token = io.open(dir .. "/token.txt"):read("*l")
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  if mode == "health" then
    return wrk.format("GET", "/health")
  end
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/api/v1/cases/" .. id, { ["Authorization"] = "Bearer " .. token })
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("status " .. status .. "\n")
  end
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
