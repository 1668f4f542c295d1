"""Measure the sandbox with wrk: a Graph user read and a trivial route of the same server, in one run.

`python -m bench.sandbox [--duration 10] [--connections 16] [--threads 2]` starts `python -m sandbox serve`,
turns Graph's quotas off (this measures the server, not the throttling it simulates), runs wrk against
`GET /_sandbox/ping` (the baseline) and `GET /v1.0/users/{id}?$select=...` (bearer token from a Lua script),
prints both figures and stops the sandbox. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench._wrk_output import WrkSummary, parse_wrk
from tests.fixtures.sandbox import SandboxInfo, start_sandbox, stop_sandbox

SELECT = "id,displayName,userPrincipalName,usageLocation,assignedLicenses,licenseAssignmentStates"
LUA = Path(__file__).with_name("bearer.lua")
TARGET_RPS = 1000.0


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reports, under the route's label."""

    label: str
    summary: WrkSummary

    def line(self) -> str:
        """One printable line."""
        s = self.summary
        return (
            f"{self.label:<44} {s.requests_per_second:>10.0f} req/s  p50 {s.percentile_ms(50):>7.2f} ms  "
            f"p99 {s.percentile_ms(99):>7.2f} ms  requests {s.requests}  non-2xx {s.non_2xx}  "
            f"{s.socket_errors}"
        )


def run_wrk(label: str, url: str, args: argparse.Namespace, env: dict[str, str]) -> WrkResult:
    """Run wrk once and parse its summary."""
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        "-s",
        str(LUA),
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout
    return WrkResult(label, parse_wrk(out, percentiles=(50, 99)))


def meets_target(graph: WrkSummary) -> bool:
    """The Graph read serves TARGET_RPS with no non-2xx and no socket error (a timeout is an error)."""
    clean = graph.non_2xx == 0 and graph.socket_errors.total == 0
    return graph.requests_per_second >= TARGET_RPS and clean


def prepare(info: SandboxInfo) -> tuple[str, str]:
    """A token for the default app and a user id; quotas off for the run."""
    with httpx.Client(verify=info.ssl_context()) as client:
        token = client.post(
            info.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": info.client_id,
                "client_secret": info.client_secret,
                "scope": "https://graph.microsoft.com/.default",
            },
        ).json()["access_token"]
        client.post(f"{info.control_url}/throttling", json={"enabled": False}).raise_for_status()
        users = client.get(
            f"{info.graph_url}/users",
            params={"$select": "id", "$top": "1"},
            headers={"Authorization": f"Bearer {token}"},
        )
        users.raise_for_status()
        return str(token), str(users.json()["value"][0]["id"])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print both figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each run")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as workdir:
        process, info = start_sandbox(Path(workdir))
        try:
            token, user_id = prepare(info)
            env = {**os.environ, "SANDBOX_TOKEN": token}
            base = info.graph_url.removesuffix("/v1.0")
            targets = [
                ("GET /_sandbox/ping (baseline)", f"{base}/_sandbox/ping"),
                (
                    f"GET /v1.0/users/{{id}}?$select=({SELECT.count(',') + 1})",
                    f"{info.graph_url}/users/{user_id}?$select={SELECT}",
                ),
            ]
            results = []
            for label, url in targets:
                if args.warmup:
                    run_wrk(label, url, argparse.Namespace(**{**vars(args), "duration": args.warmup}), env)
                results.append(run_wrk(label, url, args, env))
        finally:
            stop_sandbox(process)
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, TLS on 127.0.0.1, "
        f"one sandbox process, load average {os.getloadavg()[0]:.1f}"
    )
    for result in results:
        print(result.line())
    verdict = "meets" if meets_target(results[-1].summary) else "MISSES"
    print(f"Graph read {verdict} the target of {TARGET_RPS:.0f} req/s with no non-2xx nor socket error")
    return 0 if verdict == "meets" else 1


if __name__ == "__main__":
    sys.exit(main())
