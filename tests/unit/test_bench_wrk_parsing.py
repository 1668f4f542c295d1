"""wrk's summary as the benchmarks read it (`bench/_wrk_output.py`, shared by bench.webhook and
bench.sandbox), checked on real wrk 4.1.0 output captured on 127.0.0.1: a flaky server (503s, dropped
connections, stalls past `--timeout`), a 404 route, and a run without `--latency`."""

from __future__ import annotations

import pytest

from bench._wrk_output import SocketErrors, WrkOutputError, WrkSummary, duration_ms, parse_wrk
from bench.sandbox.__main__ import meets_target
from bench.webhook.__main__ import ITEMS, WrkResult, meets_goals

# `wrk -t2 -c16 -d4s --timeout 1s --latency` against a loopback server answering every 10th request 503,
# closing every 50th connection unanswered and stalling every 200th for 3 s.
ERRORS = """\
Running 4s test @ http://127.0.0.1:18732/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.29ms    8.52ms  96.58ms   98.18%
    Req/Sec     4.41k     6.35k   18.27k    87.50%
  Latency Distribution
     50%  180.00us
     75%  295.00us
     90%  453.00us
     99%   53.57ms
  6071 requests in 4.07s, 401.60KB read
  Socket errors: connect 0, read 125, write 0, timeout 16
  Non-2xx or 3xx responses: 621
Requests/sec:   1490.32
Transfer/sec:     98.59KB
"""

# `wrk -t2 -c8 -d3s --timeout 1s --latency` against `python -m http.server` on a path it does not have.
NOT_FOUND = """\
Running 3s test @ http://127.0.0.1:18731/missing
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    16.48ms   33.51ms 247.51ms   91.73%
    Req/Sec   349.70    271.84     1.02k    70.37%
  Latency Distribution
     50%    4.23ms
     75%   14.24ms
     90%   41.65ms
     99%  196.52ms
  1972 requests in 3.04s, 0.98MB read
  Non-2xx or 3xx responses: 1972
Requests/sec:    647.69
Transfer/sec:    328.90KB
"""

# `wrk -t1 -c2 -d1s` (no `--latency`) against `python -m http.server`.
NO_DISTRIBUTION = """\
Running 1s test @ http://127.0.0.1:18731/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.69ms    8.92ms  58.44ms   90.55%
    Req/Sec     0.96k   373.55     1.46k    60.00%
  991 requests in 1.05s, 619.38KB read
Requests/sec:    942.05
Transfer/sec:    588.78KB
"""


def test_every_figure_of_a_run_with_errors_is_read() -> None:
    """Totals, thread-stats latency, the four percentiles (in µs and ms), non-2xx and each socket error."""
    summary = parse_wrk(ERRORS, percentiles=(50, 99))
    assert summary == WrkSummary(
        requests=6071,
        duration_ms=4070.0,
        requests_per_second=1490.32,
        latency_avg_ms=1.29,
        latency_stdev_ms=8.52,
        latency_max_ms=96.58,
        percentiles_ms={50.0: 0.18, 75.0: 0.295, 90.0: 0.453, 99.0: 53.57},
        non_2xx=621,
        socket_errors=SocketErrors(connect=0, read=125, write=0, timeout=16),
    )
    assert (summary.socket_errors.total, str(summary.socket_errors)) == (
        141,
        "socket errors: connect 0, read 125, write 0, timeout 16",
    )


def test_a_run_without_socket_errors_reads_as_none_and_stdev_percentages_are_no_percentiles() -> None:
    """No "Socket errors" line: all zero; the "+/- Stdev" column (91.73%) never becomes a percentile."""
    summary = parse_wrk(NOT_FOUND)
    assert (summary.non_2xx, summary.requests, summary.requests_per_second) == (1972, 1972, 647.69)
    assert (summary.socket_errors.total, str(summary.socket_errors)) == (0, "no socket errors")
    assert summary.percentiles_ms == {50.0: 4.23, 75.0: 14.24, 90.0: 41.65, 99.0: 196.52}


def test_without_latency_the_percentiles_are_missing_and_a_bench_needing_them_fails_at_once() -> None:
    """A run without `--latency` parses, but asking for p99 (here or at parse time) is an error."""
    summary = parse_wrk(NO_DISTRIBUTION)
    assert (summary.requests, summary.non_2xx, summary.percentiles_ms) == (991, 0, {})
    with pytest.raises(WrkOutputError):
        summary.percentile_ms(99)
    with pytest.raises(WrkOutputError):
        parse_wrk(NO_DISTRIBUTION, percentiles=(50, 99))


def test_output_that_is_not_a_wrk_summary_is_refused_with_the_output_quoted() -> None:
    """What wrk prints when it cannot connect is no summary: the error quotes it."""
    refused = "unable to connect to 127.0.0.1:18799 Connection refused\n"
    with pytest.raises(WrkOutputError, match="Connection refused"):
        parse_wrk(refused)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("180.00us", 0.18), ("4.23ms", 4.23), ("1.02s", 1020.0), ("2.00m", 120_000.0), ("1.00h", 3_600_000.0)],
)
def test_wrk_durations_in_every_unit_become_milliseconds(text: str, ms: float) -> None:
    """wrk's units us, ms, s, m and h."""
    assert duration_ms(text) == pytest.approx(ms)


def test_an_unknown_unit_is_refused() -> None:
    """A unit wrk never prints is an error, not a silent guess."""
    with pytest.raises(WrkOutputError):
        duration_ms("3.00ks")


def test_the_webhook_bench_line_shows_notifications_and_socket_errors() -> None:
    """The webhook bench prints 10 notifications per request as notifications/s and every socket error."""
    line = WrkResult("POST /api/graph/notifications", parse_wrk(ERRORS)).line(ITEMS)
    assert "14903 notif/s" in line
    assert "p99   53.57 ms" in line
    assert "non-2xx 621  socket errors: connect 0, read 125, write 0, timeout 16" in line


def test_socket_errors_miss_the_goals_even_when_every_other_figure_meets_them() -> None:
    """Timed-out or dropped requests never appear in the latency figures: they alone fail the verdicts."""
    fast = WrkSummary(
        requests=600_000,
        duration_ms=30_000.0,
        requests_per_second=20_000.0,
        latency_avg_ms=2.0,
        latency_stdev_ms=1.0,
        latency_max_ms=40.0,
        percentiles_ms={50.0: 2.0, 99.0: 9.0},
    )
    timed_out = WrkSummary(**{**vars(fast), "socket_errors": SocketErrors(timeout=3)})
    assert (meets_goals(fast), meets_goals(timed_out)) == (True, False)
    assert (meets_target(fast), meets_target(timed_out)) == (True, False)
