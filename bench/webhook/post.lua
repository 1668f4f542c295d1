-- POSTs a batch of notifications whose sequence numbers are new on every request (so every request
-- persists new messages). The batch template comes from the environment (BENCH_BODY, with SEQ0..SEQ9).
local counter = 0
local thread_id = 0
local threads = 0
local template = os.getenv("BENCH_BODY")
-- Each wrk run has its own number (BENCH_RUN), so no run repeats another's sequence numbers: a repeated
-- notification is a duplicate, which the queue drops (and logs) instead of persisting.
local run = tonumber(os.getenv("BENCH_RUN") or "0")

function setup(thread)
  threads = threads + 1
  thread:set("tid", tostring(threads))
end

function init(args)
  thread_id = tonumber(tid) or 0
end

request = function()
  counter = counter + 1
  local base = run * 1000000000000 + thread_id * 100000000000 + counter * 10
  local body = template:gsub("SEQ(%d)", function(d) return tostring(base + tonumber(d)) end)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
