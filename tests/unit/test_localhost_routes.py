"""Azure Functions route templates match as the Functions host matches them."""

from __future__ import annotations

import pytest

from seatkeeper.localhost.routes import compile_route


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("health", "health", {}),
        ("health", "HEALTH", {}),
        ("health", "healthz", None),
        ("users/{id}", "users/42", {"id": "42"}),
        ("users/{id}", "users/42/more", None),
        ("items/{id:int}", "items/7", {"id": "7"}),
        ("items/{id:int}", "items/x", None),
        ("items/{id?}", "items", {}),
        ("items/{id?}", "items/9", {"id": "9"}),
        ("files/{*rest}", "files/a/b/c", {"rest": "a/b/c"}),
        ("v{version}/x", "v2/x", {"version": "2"}),
    ],
    ids=str,
)
def test_route_matching(template: str, path: str, expected: dict[str, str] | None) -> None:
    """Literal segments ignore case; parameters, constraints, optional and catch-all segments work."""
    assert compile_route(template).match(path) == expected
