-- Shared by the wrk scripts of bench/ (loaded with require("common")): lists from the
-- environment, the thread's index for disjoint sequences, status counts per thread, and a
-- machine-readable report in done() that bench/run.py parses.
local M = {}

-- "a,b,c" from environment variable `name` as a list of strings.
function M.list(name)
  local value = os.getenv(name)
  if value == nil or value == "" then
    error("environment variable " .. name .. " is not set")
  end
  local items = {}
  for item in string.gmatch(value, "[^,]+") do
    table.insert(items, item)
  end
  return items
end

-- "a:b,c:d" as {{"a", "b"}, {"c", "d"}}.
function M.pairs(name)
  local result = {}
  for _, item in ipairs(M.list(name)) do
    local first, second = string.match(item, "^([^:]+):([^:]+)$")
    table.insert(result, {first, second})
  end
  return result
end

-- The setup phase runs in wrk's main Lua state, once per thread, before the thread's init():
-- give each thread its index `tid` (0, 1, ...) and keep the thread to read its counts in done().
local threads = {}

function M.setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

-- In each thread: `statuses` counts responses by HTTP status; `sent` counts requests built.
function M.init()
  statuses = {}
  sent = 0
  math.randomseed(os.time() + 7919 * (tid + 1))
end

function M.response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_SUMMARY requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  io.write(string.format(
    "BENCH_LATENCY p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
  for _, thread in ipairs(threads) do
    local line = string.format("BENCH_STATUS thread=%d", thread:get("tid"))
    for status, count in pairs(thread:get("statuses") or {}) do
      line = line .. string.format(" %d=%d", status, count)
    end
    io.write(line .. "\n")
  end
end

return M
