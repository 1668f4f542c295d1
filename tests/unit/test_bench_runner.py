"""`python -m bench` finds every benchmark of bench/ without being edited when one is added."""

from __future__ import annotations

import pytest

from bench.__main__ import discover, main


def test_every_benchmark_package_and_module_is_found() -> None:
    """Packages with a __main__.py and plain modules are benchmarks; the runner itself is not."""
    found = discover()
    assert (found["import_time"], found["sandbox"]) == ("bench.import_time", "bench.sandbox.__main__")
    assert "__main__" not in found
    assert "__init__" not in found


def test_an_unknown_name_is_refused() -> None:
    """Asking for a benchmark that does not exist fails before anything runs."""
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-benchmark"])
    assert exit_info.value.code == 2
