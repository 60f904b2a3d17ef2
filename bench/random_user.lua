-- wrk script: every request carries a random user's HS256 token.
-- BENCH_TOKENS names a file of lines "<token> <one of the user's document ids> <search term>";
-- BENCH_ROUTE picks the request: list | get | post | search.
-- BENCH_MAX_REQUESTS (optional) stops each thread after that many responses (wrk still runs out -d).
-- done() prints one JSON line: requests, seconds, latency p50/p99 (ms), errors.

local lines = {}
local route = os.getenv("BENCH_ROUTE") or "list"
local max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "")
local counter = 0
local thread_tag = tostring({}):sub(-6)

function init(args)
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    local token, doc, term = line:match("(%S+) (%S+) (%S+)")
    lines[#lines + 1] = {token, doc, term}
  end
  math.randomseed(os.time() + tonumber(thread_tag, 16) % 100000)
end

function request()
  local r = lines[math.random(#lines)]
  local headers = {["Authorization"] = "Bearer " .. r[1]}
  if route == "get" then
    return wrk.format("GET", "/api/documents/" .. r[2], headers)
  elseif route == "search" then
    return wrk.format("GET", "/api/search?q=" .. r[3], headers)
  elseif route == "post" then
    counter = counter + 1
    headers["Content-Type"] = "application/json"
    local body = '{"filename":"bench-post-' .. thread_tag .. '-' .. counter ..
      '.txt","file_type":"text/plain","file_size":123,"content_text":"benchmark upload: cats, dogs and quarterly numbers"}'
    return wrk.format("POST", "/api/documents", headers, body)
  end
  return wrk.format("GET", "/api/documents", headers)
end

if max_requests then
  local seen = 0
  function response(status, headers, body)
    seen = seen + 1
    if seen >= max_requests then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, e.connect, e.read, e.write, e.status, e.timeout))
end
