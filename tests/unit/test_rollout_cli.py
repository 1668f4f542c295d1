"""The `rollout` command's own parts: the default name, and `rollout list` / `rollout remove` over a store."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from seatkeeper.adapters.sqlite_state import SqliteStateStore
from seatkeeper.cli import build_parser
from seatkeeper.cli.rollout import EXIT_DONE, EXIT_FAILED, default_name, list_rollouts, remove_rollout
from seatkeeper.core.rollout import IdKind, ListedPerson, PersonPlan, Planned
from seatkeeper.core.rollout_records import RolloutHeader, RolloutRecords
from tests.unit.test_gate_builders import NOW

pytestmark = pytest.mark.anyio
GROUP = "a3193522-ecd3-4c1a-80cd-b107376dc077"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def records(tmp_path: Path) -> Iterator[RolloutRecords]:
    store = SqliteStateStore(tmp_path / "state.sqlite3")
    try:
        yield RolloutRecords(store)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("path", "name"),
    [("pilot.csv", "pilot"), ("lists/Pilot wave 1.csv", "Pilot-wave-1"), ("###.csv", "rollout")],
)
def test_the_default_name_is_the_file_s_stem(path: str, name: str) -> None:
    """A rollout is named after its file, made safe for the state store."""
    assert default_name(Path(path)) == name


def test_the_command_is_registered() -> None:
    """`seatkeeper rollout` and `seatkeeper whatif` are part of the command tree."""
    parser = build_parser()
    rollout = parser.parse_args(["rollout", "pilot.csv", "--group", GROUP, "--dry-run", "--csv"])
    whatif = parser.parse_args(["whatif", "--policy", "new.yaml", "--rule", GROUP, 'user.country -eq "DE"'])
    assert (rollout.target, rollout.dry_run, rollout.csv) == ("pilot.csv", True, True)
    assert whatif.rule == [[GROUP, 'user.country -eq "DE"']]


async def test_list_shows_each_rollout_with_its_states(records: RolloutRecords) -> None:
    """`rollout list --json` names each rollout, its group and how many people are in each state."""
    await records.start(RolloutHeader("pilot", GROUP, "cli:ana", NOW, "pilot.csv"))
    listed = ListedPerson(2, IdKind.UPN, "ana@contoso.example")
    await records.save("pilot", [PersonPlan(listed, "u1", "ana@contoso.example", Planned.ADDED)], now=NOW)
    out = io.StringIO()
    assert await list_rollouts(records, out, as_json=True) == EXIT_DONE
    [entry] = json.loads(out.getvalue())
    assert (entry["name"], entry["group_id"], entry["by_state"]) == ("pilot", GROUP, {"added": 1})


async def test_remove_forgets_a_rollout_and_says_when_there_is_none(records: RolloutRecords) -> None:
    """Removing twice: the first forgets it, the second says there is no such rollout."""
    await records.start(RolloutHeader("pilot", GROUP, "cli:ana", NOW, "pilot.csv"))
    out, err = io.StringIO(), io.StringIO()
    first = await remove_rollout(records, "pilot", out, err)
    second = await remove_rollout(records, "pilot", out, err)
    assert (first, second, "no rollout named 'pilot'" in err.getvalue()) == (EXIT_DONE, EXIT_FAILED, True)
