"""Graph's subscription quota: its 403 told apart from a missing permission, reported as one quota incident
with the fix (not as a failure of each group), and resolved by the first run that creates again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from handlers.alerts import handle_alert
from handlers.subscription_upkeep import QUOTA_PROBLEM, UNHEALTHY_PROBLEM, UpkeepDeps, run_upkeep
from seatkeeper.adapters.graph.failures import error_for
from seatkeeper.core.errors import SeatkeeperError, Unavailable
from seatkeeper.core.incidents import Cause, Decision, parse_alert
from seatkeeper.core.policy import Alerts
from seatkeeper.core.subscription_plan import is_quota_refusal, refused_limit
from seatkeeper.core.subscription_records import SubscriptionRecords
from tests.unit.notification_fakes import DeltaGraph, FakeClock, MemoryStore, RecordingQueue
from tests.unit.test_subscription_upkeep import KEY, TARGET

pytestmark = pytest.mark.anyio

# What the sandbox answers once the app holds 100 subscriptions (sandbox/subscriptions.py).
SANDBOX_QUOTA_MESSAGE = (
    "Operation: Create; Exception: [Status Code: Forbidden; Reason: Subscription limit of 100 for this "
    "application and tenant has been reached for resource type groups.]"
)
# Graph's wording seen in the wild for another resource (microsoft-graph-docs issue 21403).
GRAPH_QUOTA_MESSAGE = (
    "Operation: Create; Exception: [Status Code: Forbidden; Reason: Maximum number of subscriptions has "
    "been reached]"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _graph_error(status: int, code: str, message: str) -> SeatkeeperError:
    """The core error the Graph adapter raises for this answer to `POST /subscriptions`."""
    return error_for(status, {"error": {"code": code, "message": message}}, "POST /subscriptions")


@pytest.mark.parametrize(
    ("error", "quota"),
    [
        pytest.param(_graph_error(403, "ExtensionError", SANDBOX_QUOTA_MESSAGE), True, id="sandbox-quota"),
        pytest.param(_graph_error(403, "ExtensionError", GRAPH_QUOTA_MESSAGE), True, id="graph-quota"),
        pytest.param(
            _graph_error(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            ),
            False,
            id="permission",
        ),
        pytest.param(
            _graph_error(
                400, "InvalidRequest", "Subscription expiration can only be 41760 minutes in the future."
            ),
            False,
            id="bad-request",
        ),
        pytest.param(Unavailable("POST /subscriptions: 503 subscription limit reached"), False, id="5xx"),
    ],
)
def test_only_a_403_that_names_the_subscription_limit_is_a_quota_refusal(
    error: SeatkeeperError, quota: bool
) -> None:
    """Graph's quota 403 (either wording) is the quota; a permission 403 or another status is not."""
    assert is_quota_refusal(error) is quota


def test_the_limit_is_read_from_the_refusal_when_graph_names_it() -> None:
    """ "limit of 100" gives 100; a refusal without a number falls back to the documented 100."""
    assert (refused_limit("Subscription limit of 40 for this app"), refused_limit(GRAPH_QUOTA_MESSAGE)) == (
        40,
        100,
    )


def _rig(error: SeatkeeperError | None) -> tuple[DeltaGraph, RecordingQueue, FakeClock, UpkeepDeps]:
    graph, store, queue, clock = DeltaGraph(create_error=error), MemoryStore(), RecordingQueue(), FakeClock()
    return graph, queue, clock, UpkeepDeps(graph, SubscriptionRecords(store), queue, clock, KEY, TARGET)


async def test_a_quota_refusal_is_one_quota_alert_with_the_fix_not_a_failure_per_group() -> None:
    """Graph refuses the first creation for its quota: no group is `failed`, the second creation is not
    tried, and one `subscription.quota_exceeded` alert says how many the app holds, the limit and the fix."""
    graph, queue, _, deps = _rig(_graph_error(403, "ExtensionError", SANDBOX_QUOTA_MESSAGE))
    graph.subscriptions["other"] = {
        "id": "other",
        "resource": "/groups/x",
        "notificationUrl": "https://other.example/hook",
        "expirationDateTime": "2099-01-01T00:00:00Z",
    }
    report = await run_upkeep(["g1", "g2"], deps, correlation_id="c")
    [alert] = [parse_alert(m.payload) for m in queue.of_kind("alert")]
    assert report.failed == {}
    assert report.quota is not None
    assert (report.quota.blocked_groups, report.quota.limit, report.quota.in_use) == (("g1", "g2"), 100, 1)
    assert [w for w in graph.writes if w[0] == "POST"] == [("POST", "/subscriptions")]
    assert (alert.key.problem, alert.cause) == (QUOTA_PROBLEM, Cause.PRESENT)
    facts = {f.label: f.value for f in alert.evidence}
    assert facts["Subscriptions held by the app"] == "1"
    assert facts["Of them, other endpoints"] == "1"
    assert facts["Limit per app and tenant"] == "100"
    assert facts["Groups without a subscription"] == "2"
    assert "Subscription limit of 100" in facts["Graph's answer"]
    assert "per app registration and tenant" in alert.remediation
    assert "app registration of its own" in alert.remediation
    assert "Delete the stale ones" in alert.remediation


async def test_a_permission_refusal_is_still_the_groups_failure_and_says_nothing_of_the_quota() -> None:
    """A 403 for a missing permission keeps its `subscription.unhealthy` alert per group; no quota alert."""
    _, queue, _, deps = _rig(
        _graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    )
    report = await run_upkeep(["g1"], deps, correlation_id="c")
    problems = [str(m.payload["problem"]) for m in queue.of_kind("alert")]
    assert (list(report.failed), problems) == (["g1"], [UNHEALTHY_PROBLEM])


async def test_the_quota_incident_opens_once_and_closes_when_a_later_creation_succeeds() -> None:
    """Three hourly runs refused: one incident, opened once; the run that creates resolves it."""
    graph, queue, clock, deps = _rig(_graph_error(403, "ExtensionError", SANDBOX_QUOTA_MESSAGE))
    incidents = MemoryStore()
    decisions: list[Decision] = []
    seen: set[str] = set()
    for hour in range(4):
        if hour == 3:
            graph.create_error = None
        report = await run_upkeep(["g1"], deps, correlation_id="c")
        for message in queue.of_kind("alert"):
            if message.payload["problem"] != QUOTA_PROBLEM or message.message_id in seen:
                continue
            seen.add(message.message_id)
            result = await handle_alert(
                message.body(), store=incidents, channels={}, alerts=Alerts(), clock=clock
            )
            decisions.append(result.decision)
        clock.advance(timedelta(hours=1))
    assert report.created == ["g1"]
    assert decisions == [Decision.OPENED, Decision.UPDATED, Decision.UPDATED, Decision.RESOLVED]
