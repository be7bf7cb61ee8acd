-- wrk script: each request POSTs a JSON Lines body of N fresh events (unique IDs, so that
-- nothing is a duplicate), N = the first script argument (default 256). Payments on 100,000
-- bookings (bounded state). Counts non-200 answers.
--   wrk -t1 -c8 -d10s -s post_events.lua http://127.0.0.1:8080 -- 256
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

function init(args)
  n = tonumber(args[1] or "256")
  counter = 0
  not_ok = 0
end

function request()
  local lines = {}
  for i = 1, n do
    counter = counter + 1
    lines[i] = string.format(
      '{"event_id":"w%d-%d","booking_id":"bk-%d","type":"payment","amount_cents":100}',
      id, counter, counter % 100000)
  end
  return wrk.format("POST", "/events", {["Content-Type"] = "application/x-ndjson"},
                    table.concat(lines, "\n") .. "\n")
end

function response(status, headers, body)
  if status ~= 200 then not_ok = not_ok + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + (t:get("not_ok") or 0) end
  io.write(string.format("events_per_request %d\nrequests %d\nseconds %.3f\nnot_200 %d\n",
                         threads[1]:get("n"), summary.requests, summary.duration / 1e6, bad))
  io.write(string.format("latency_p50_ms %.3f\nlatency_p99_ms %.3f\n",
                         latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
