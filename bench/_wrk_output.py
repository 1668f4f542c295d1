"""Read wrk's summary (wrk 4.x, as Debian ships it): totals, latency, percentiles, errors.

One parser for every benchmark that drives wrk (`bench.webhook`, `bench.sandbox`). The leading underscore
keeps `python -m bench` from taking this module for a benchmark.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

# wrk prints durations with one of these units (its `format_time`).
_TIME_UNITS: Final = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME: Final = re.compile(r"^([\d.]+)(us|ms|s|m|h)$")
_TOTAL: Final = re.compile(r"^\s*(\d+) requests in ([\d.]+\w+),", re.MULTILINE)
_RATE: Final = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
# The Thread Stats row: avg, stdev, max, +/- stdev.
_LATENCY: Final = re.compile(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)\s+\S+%$", re.MULTILINE)
# The Latency Distribution rows (`--latency`), anchored so the "+/- Stdev" percentages never match.
_PERCENTILE: Final = re.compile(r"^\s+(\d+(?:\.\d+)?)%\s+([\d.]+(?:us|ms|s|m|h))$", re.MULTILINE)
_NON_2XX: Final = re.compile(r"^\s+Non-2xx or 3xx responses:\s+(\d+)$", re.MULTILINE)
_SOCKET: Final = re.compile(
    r"^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)$", re.MULTILINE
)


class WrkOutputError(ValueError):
    """wrk's output lacks a line the benchmark needs (wrk failed, or printed another format)."""


def duration_ms(text: str) -> float:
    """A wrk duration ("812.00us", "4.23ms", "1.02s", "2.00m") in milliseconds."""
    match = _TIME.match(text.strip())
    if match is None:
        raise WrkOutputError(f"not a wrk duration: {text!r}")
    # Rounded to the nanosecond: wrk prints two decimals; 4.07 s reads 4070.0, not 4070.0000000000005.
    return round(float(match.group(1)) * _TIME_UNITS[match.group(2)], 6)


@dataclass(frozen=True)
class SocketErrors:
    """wrk's "Socket errors" line; all zero when wrk printed none. A timed-out request is not in the
    latency figures at all, so a timeout counts against a latency goal as much as a slow answer."""

    connect: int = 0
    read: int = 0
    write: int = 0
    timeout: int = 0

    @property
    def total(self) -> int:
        """Every socket error together."""
        return self.connect + self.read + self.write + self.timeout

    def __str__(self) -> str:
        if not self.total:
            return "no socket errors"
        return (
            f"socket errors: connect {self.connect}, read {self.read}, write {self.write}, "
            f"timeout {self.timeout}"
        )


@dataclass(frozen=True)
class WrkSummary:
    """The figures of one wrk run; latencies in milliseconds."""

    requests: int
    duration_ms: float
    requests_per_second: float
    latency_avg_ms: float
    latency_stdev_ms: float
    latency_max_ms: float
    percentiles_ms: Mapping[float, float] = field(default_factory=dict)
    non_2xx: int = 0
    socket_errors: SocketErrors = field(default_factory=SocketErrors)

    def percentile_ms(self, percent: float) -> float:
        """The latency at `percent` (50, 75, 90, 99): only printed with `--latency`."""
        try:
            return self.percentiles_ms[percent]
        except KeyError:
            raise WrkOutputError(f"no {percent:g}% latency: run wrk with --latency") from None


def parse_wrk(out: str, *, percentiles: tuple[float, ...] = ()) -> WrkSummary:
    """wrk's summary as figures; WrkOutputError (quoting the output) when a required line is missing,
    the `percentiles` the caller needs included (so a run without `--latency` fails at once)."""
    total, rate, latency = _TOTAL.search(out), _RATE.search(out), _LATENCY.search(out)
    found = {float(p): t for p, t in _PERCENTILE.findall(out)}
    if total is None or rate is None or latency is None or not set(percentiles) <= set(found):
        raise WrkOutputError(f"could not read wrk's output:\n{out}")
    non_2xx = _NON_2XX.search(out)
    socket = _SOCKET.search(out)
    return WrkSummary(
        requests=int(total.group(1)),
        duration_ms=duration_ms(total.group(2)),
        requests_per_second=float(rate.group(1)),
        latency_avg_ms=duration_ms(latency.group(1)),
        latency_stdev_ms=duration_ms(latency.group(2)),
        latency_max_ms=duration_ms(latency.group(3)),
        percentiles_ms={p: duration_ms(t) for p, t in found.items()},
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=SocketErrors(*(int(n) for n in socket.groups())) if socket else SocketErrors(),
    )
