"""Seeded fault injection: rules by path, method, rate and count, reproducible from the seed."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.faults import FaultInjector, FaultSpecError


def _run(injector: FaultInjector, n: int, path: str = "/v1.0/users/u1") -> list[str | None]:
    picks = [injector.pick("GET", path) for _ in range(n)]
    return [rule.kind if rule else None for rule in picks]


def test_same_seed_gives_same_faults() -> None:
    """Two injectors configured alike fault the same requests."""
    spec: dict[str, Any] = {"seed": 7, "rules": [{"path": "/users/", "kind": "throttle", "rate": 0.3}]}
    first, second = FaultInjector(), FaultInjector()
    first.configure_from_json(spec)
    second.configure_from_json(spec)
    outcome = _run(first, 200)
    assert outcome == _run(second, 200)
    assert 20 < outcome.count("throttle") < 100


def test_path_and_method_select_the_requests() -> None:
    """A rule fires only on matching path and method."""
    injector = FaultInjector()
    injector.configure_from_json(
        {"rules": [{"path": "^/v1.0/groups/.*/members", "method": "post", "kind": "unavailable"}]}
    )
    assert injector.pick("POST", "/v1.0/groups/g1/members/$ref") is not None
    assert injector.pick("GET", "/v1.0/groups/g1/members") is None
    assert injector.pick("POST", "/v1.0/users") is None


def test_count_limits_how_often_a_rule_fires() -> None:
    """`count` spends: after it, the next matching rule (or none) applies."""
    injector = FaultInjector()
    injector.configure_from_json(
        {"rules": [{"path": ".*", "kind": "drop", "count": 2}, {"path": ".*", "kind": "slow", "delay": 0.5}]}
    )
    assert _run(injector, 4) == ["drop", "drop", "slow", "slow"]


def test_clear_removes_every_rule() -> None:
    """After clear, nothing is injected."""
    injector = FaultInjector()
    injector.configure_from_json({"rules": [{"path": ".*", "kind": "throttle"}]})
    injector.clear()
    assert (injector.active, _run(injector, 3)) == (False, [None, None, None])


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "(", "kind": "throttle"},
        {"path": ".*", "kind": "explode"},
        {"path": ".*", "kind": "throttle", "rate": 1.5},
        {"path": ".*", "kind": "throttle", "retry_after": -1},
        {"path": ".*", "kind": "slow", "delay": "long"},
        {"path": ".*", "kind": "drop", "count": -3},
    ],
    ids=["bad-regex", "bad-kind", "bad-rate", "bad-retry-after", "bad-delay", "bad-count"],
)
def test_malformed_rules_are_refused(rule: dict[str, Any]) -> None:
    """The control plane gets a clear error for each malformed field."""
    with pytest.raises(FaultSpecError):
        FaultInjector().configure_from_json({"seed": 1, "rules": [rule]})


def test_retry_after_defaults_to_one_second_and_null_means_no_header() -> None:
    """A rule without `retry_after` keeps the header (1 s); `null` is accepted and means none."""
    injector = FaultInjector()
    injector.configure_from_json(
        {
            "rules": [
                {"path": "/a", "kind": "throttle"},
                {"path": "/b", "kind": "throttle", "retry_after": None},
            ]
        }
    )
    assert [rule["retry_after"] for rule in injector.describe()] == [1, None]
