-- wrk script: cycle through pre-signed Slack slash commands, count outcomes per thread.
--
--   wrk -t T -c C -d D -s signed.lua URL -- REQUESTS_FILE T EXPECT
--
-- REQUESTS_FILE holds one request a line: timestamp<TAB>signature<TAB>form body.
-- Thread k of T takes lines k, k+T, k+2T, ... so no two threads send the same request
-- at the same time.  done() prints one line "WRK_JSON {...}" for the benchmark to parse.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   local path = args[1]
   local nthreads = tonumber(args[2])
   expect = args[3] or ""
   requests = {}
   local line_no = 0
   for line in io.lines(path) do
      if line_no % nthreads == id then
         local ts, sig, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
         requests[#requests + 1] = wrk.format("POST", "/slack/events", {
            ["Content-Type"] = "application/x-www-form-urlencoded",
            ["X-Slack-Request-Timestamp"] = ts,
            ["X-Slack-Signature"] = sig,
         }, body)
      end
      line_no = line_no + 1
   end
   index = 0
   ok2xx = 0
   non2xx = 0
   matched = 0
   unmatched = 0
   first_bad = ""
end

function request()
   index = index % #requests + 1
   return requests[index]
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok2xx = ok2xx + 1
      if expect == "" or string.find(body, expect, 1, true) then
         matched = matched + 1
      else
         unmatched = unmatched + 1
         if first_bad == "" then first_bad = string.sub(body, 1, 200) end
      end
   else
      non2xx = non2xx + 1
      if first_bad == "" then first_bad = status .. " " .. string.sub(body, 1, 200) end
   end
end

local function quote(s)
   return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
   local ok, bad, m, um, distinct = 0, 0, 0, 0, 0
   local example = ""
   for _, thread in ipairs(threads) do
      ok = ok + thread:get("ok2xx")
      bad = bad + thread:get("non2xx")
      m = m + thread:get("matched")
      um = um + thread:get("unmatched")
      local fb = thread:get("first_bad")
      if example == "" and fb ~= nil then example = fb end
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"duration_us": %d, "requests": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, ' ..
      '"status": %d, "timeout": %d, "ok2xx": %d, "non2xx": %d, "matched": %d, "unmatched": %d, ' ..
      '"lat_p50_us": %d, "lat_p90_us": %d, "lat_p99_us": %d, "lat_max_us": %d, "lat_mean_us": %d, ' ..
      '"example": %s}\n',
      summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      ok, bad, m, um, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean, quote(example)))
end
