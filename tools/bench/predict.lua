-- wrk script: POST /predict for known users in turn, then one JSON line of results.
-- BENCH_USERS (env) = how many generated users to cycle through (ids U0001..).
local users = tonumber(os.getenv("BENCH_USERS") or "1000")
local counter = 0
local headers = { ["Content-Type"] = "application/json" }

request = function()
  counter = counter % (users - 1) + 1
  return wrk.format("POST", "/predict", headers, string.format('{"user_id":"U%04d"}', counter))
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"socket_errors":%d,"non_2xx":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
