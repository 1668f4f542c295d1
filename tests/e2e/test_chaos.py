"""The chaos run at reduced scale (`python -m bench.chaos` runs it at full scale): HR joiners, leavers and
movers with direct group edits, 20 % Graph faults and kill -9 of the host; nothing lost, nothing wrong."""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import pytest

from bench.chaos.run import REDUCED, run_chaos
from tests.fixtures.sandbox import SandboxInfo

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("seats", [None, 5], ids=["seats plenty", "seats scarce"])
def test_chaos_run_loses_nothing_and_ends_as_the_policy_implies(
    tenant: SandboxInfo, tmp_path: Path, seats: int | None
) -> None:
    """Lost events, wrong final states, duplicate alerts, seats over-assigned and silent dead letters: 0.
    With 5 seats for the run's people, seats run out: people wait, none is given a seat past the count.

    The seed is printed; `SEATKEEPER_CHAOS_SEED=N` replays a run."""
    seed = int(os.environ.get("SEATKEEPER_CHAOS_SEED", str(random.SystemRandom().randrange(1, 2**31))))
    scale = dataclasses.replace(REDUCED, seats=seats)
    report = run_chaos(tenant, tmp_path, scale, seed)
    print("\n".join(report.lines()))
    assert report.kills == REDUCED.kills
    assert report.events_accepted >= REDUCED.joiners + REDUCED.leavers + REDUCED.movers
    if not report.passed:  # no traceback: the fixture's repr would print the sandbox's credentials
        pytest.fail("\n".join(report.lines()), pytrace=False)
    if seats is not None:
        assert report.waiting_for_seat > 0, "seats never ran out: the scarce case tested nothing"
