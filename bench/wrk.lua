-- Request source for bench/run.sh: cycles through prebuilt requests read
-- from a spec file (first script argument), one request a line:
--   METHOD <TAB> PATH <TAB> BEARER-TOKEN or - <TAB> JSON-BODY or -
-- Requests are formatted once in init(), so the per-request Lua cost is a
-- table look-up, the same for every scenario (the baseline included).
-- done() prints one machine-readable line:
--   WRK_RESULT requests duration_us p50_us p99_us status_errors connect read write timeout

local reqs, n, i = {}, 0, 0
local threads = 0

function setup(thread)
   thread:set("thread_no", threads)
   threads = threads + 1
end

function init(args)
   local f = assert(io.open(args[1], "r"))
   for line in f:lines() do
      local method, target, token, body = line:match("^(%S+)\t(%S+)\t(%S+)\t(.*)$")
      if method then
         local headers = {}
         if token ~= "-" then
            headers["Authorization"] = "Bearer " .. token
         end
         local b = nil
         if body ~= "-" then
            headers["Content-Type"] = "application/json"
            b = body
         end
         n = n + 1
         reqs[n] = wrk.format(method, target, headers, b)
      end
   end
   f:close()
   assert(n > 0, "no requests in " .. args[1])
   -- Threads start at different places in the list.
   i = ((thread_no or 0) * 7919) % n
end

function request()
   i = i % n + 1
   return reqs[i]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("WRK_RESULT %d %d %d %d %d %d %d %d %d\n",
      summary.requests, summary.duration,
      math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
      e.status, e.connect, e.read, e.write, e.timeout))
end
