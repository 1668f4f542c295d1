"""Graph's resource-unit costs and app+tenant quotas, as the sandbox applies them (graph-facts §D)."""

from __future__ import annotations

import pytest

from sandbox.throttling import WRITE_QUOTA, Quotas, TenantSize, base_cost, request_cost


class FakeTime:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/users", 2),
        ("GET", "/users/abc", 1),
        ("GET", "/groups/g1/members", 3),
        ("GET", "/groups/g1/transitiveMembers", 5),
        ("GET", "/subscribedSkus", 3),
        ("GET", "/users/abc/licenseDetails", 2),
        ("GET", "/groups/delta", 1),
        ("POST", "/groups/g1/members/$ref", 1),
        ("PATCH", "/users/abc", 1),
    ],
    ids=str,
)
def test_base_costs_follow_the_documented_table(method: str, path: str, expected: int) -> None:
    """Listed GETs cost their documented RU, every other call 1."""
    assert base_cost(method, path) == expected


@pytest.mark.parametrize(
    ("base", "query", "expected"),
    [
        (2, {}, 2),
        (2, {"$select": "id"}, 1),
        (1, {"$select": "id"}, 1),
        (3, {"$expand": "members"}, 4),
        (3, {"$top": "5"}, 2),
        (3, {"$top": "999"}, 3),
        (2, {"$select": "id", "$top": "10"}, 1),
    ],
    ids=["plain", "select", "select-floor", "expand", "small-top", "big-top", "floor-of-one"],
)
def test_query_options_adjust_the_cost(base: int, query: dict[str, str], expected: int) -> None:
    """`$select` -1, `$expand` +1, `$top` under 20 -1, never below 1."""
    assert request_cost(base, query) == expected


@pytest.mark.parametrize(
    ("users", "size"),
    [(0, TenantSize.S), (49, TenantSize.S), (50, TenantSize.M), (500, TenantSize.M), (501, TenantSize.L)],
)
def test_tenant_size_follows_user_count(users: int, size: TenantSize) -> None:
    """S under 50 users, M up to 500, L above."""
    assert TenantSize.for_user_count(users) is size


def test_resource_unit_quota_refuses_with_retry_after_then_recovers() -> None:
    """A small tenant gets 3,500 RU per 10 s; the next request waits until the window frees room."""
    clock = FakeTime()
    quotas = Quotas(lambda: TenantSize.S, now=clock)
    for _ in range(1750):
        assert quotas.charge("app", 2, write=False).allowed
    refused = quotas.charge("app", 1, write=False)
    clock.now += 10.0
    after = quotas.charge("app", 1, write=False)
    assert (refused.allowed, refused.retry_after, refused.headers()["x-ms-throttle-information"]) == (
        False,
        10,
        "ResourceUnitLimitExceeded",
    )
    assert after.allowed


def test_quotas_are_per_application() -> None:
    """One app exhausting its quota does not throttle another."""
    quotas = Quotas(lambda: TenantSize.S, now=FakeTime())
    quotas.charge("busy", 3500, write=False)
    assert (
        quotas.charge("busy", 1, write=False).allowed,
        quotas.charge("quiet", 1, write=False).allowed,
    ) == (
        False,
        True,
    )


def test_write_quota_is_3000_per_150_seconds() -> None:
    """The 3,001st write within 2.5 minutes answers 429 with the write reason."""
    clock = FakeTime()
    quotas = Quotas(lambda: TenantSize.L, now=clock)
    for _ in range(WRITE_QUOTA):
        clock.now += 0.004  # stay under the RU quota: 3,000 RU spread over 12 s
        assert quotas.charge("app", 1, write=True).allowed
    refused = quotas.charge("app", 1, write=True)
    assert (refused.allowed, refused.reason) == (False, "WriteLimitExceeded")
    assert refused.headers()["Retry-After"] == str(refused.retry_after)


def test_usage_over_80_percent_is_reported_in_a_header() -> None:
    """x-ms-throttle-limit-percentage appears once usage passes 0.8 of the quota, not before."""
    quotas = Quotas(lambda: TenantSize.S, now=FakeTime())
    low = quotas.charge("app", 2000, write=False)
    high = quotas.charge("app", 900, write=False)
    assert "x-ms-throttle-limit-percentage" not in low.headers()
    assert high.headers()["x-ms-throttle-limit-percentage"] == "0.8"
    assert high.headers()["x-ms-resource-unit"] == "900"


def test_switched_off_quotas_admit_everything() -> None:
    """With throttling off, no request is refused."""
    quotas = Quotas(lambda: TenantSize.S, now=FakeTime())
    quotas.enabled = False
    assert all(quotas.charge("app", 1000, write=True).allowed for _ in range(10))
