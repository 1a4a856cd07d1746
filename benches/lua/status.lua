-- Counts non-2xx responses (wrk reports them) and prints latency percentiles
-- in microseconds as one JSON line for bench.py.
done = function(summary, latency, requests)
  io.write(string.format(
    "\nBENCHJSON {\"requests\":%d,\"duration_us\":%d,\"p50\":%d,\"p99\":%d,\"non2xx\":%d,\"errors\":%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
