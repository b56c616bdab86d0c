-- wrk has no fixed-rate mode in Debian's build (no -R): pace each connection
-- with a think time instead, so wrk runs near the same request rate as
-- loadtest and the CPU per request compares like with like.
local pause_ms = tonumber(os.getenv("WRK_DELAY_MS") or "5")
function delay()
  return pause_ms
end
