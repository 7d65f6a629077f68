-- wrk script for the Clipper benchmark: one POST per request, 10 doubles per query.
--
-- Environment (read once per wrk thread):
--   BENCH_PATH   request path, e.g. /noop/predict            (default /predict)
--   BENCH_SHAPE  body shape: "input" -> {"input": [..10 doubles..]}          (Clipper, Tornado, LitServe,
--                                                                            Ray Serve, BentoML)
--                            "v2"    -> Open Inference Protocol V2 tensor body (MLServer)
--   BENCH_VARY   "1" (default): the first double is a per-request counter, so no two requests carry the
--                same input and Clipper's prediction cache never hits; "0": the same body every time
--                (the cached path).
--   BENCH_SEED   start of this wrk run's counter range (bench/run.py gives every wrk run its own range, so a
--                measured run never repeats its warm-up's inputs); each thread adds thread_index * 1e7.
-- done() prints one line "WRK_RESULT {json}" that bench/run.py parses.

local path = os.getenv("BENCH_PATH") or "/predict"
local shape = os.getenv("BENCH_SHAPE") or "input"
local vary = (os.getenv("BENCH_VARY") or "1") ~= "0"
local seed = tonumber(os.getenv("BENCH_SEED") or "0")

local rest = ", 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5"
local prefix, suffix
if shape == "v2" then
   prefix = '{"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP64", "data": ['
   suffix = ']}]}'
else
   prefix = '{"input": ['
   suffix = ']}'
end

local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_index", #threads)
   table.insert(threads, thread)
end

function init(args)
   -- Disjoint counter ranges per run and per thread (each wrk thread has its own Lua state).
   counter = seed + (thread_index or 0) * 10000000
   wrk.method = "POST"
   wrk.path = path
   wrk.headers["Content-Type"] = "application/json"
   wrk.body = prefix .. "0.25" .. rest .. suffix
   if not vary then
      fixed = wrk.format(nil, path)
   end
end

function request()
   if not vary then
      return fixed
   end
   counter = counter + 1
   return wrk.format(nil, path, nil, prefix .. counter .. ".25" .. rest .. suffix)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, ' ..
      '"p99_us": %d, "mean_us": %.1f, "max_us": %d, "non2xx": %d, "connect_errors": %d, ' ..
      '"read_errors": %d, "write_errors": %d, "timeouts": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0),
      latency.mean, latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
