"""Importing function_app.py (what the Functions host does to index it) loads no adapter, handler or I/O
library: those load in the trigger bodies, so indexing and cold starts stay as fast as the binding library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAZY = ("seatkeeper.bootstrap", "seatkeeper.adapters", "handlers", "httpx", "msal", "structlog", "yaml")


def test_indexing_imports_only_the_binding_library() -> None:
    """A fresh interpreter that imports function_app has none of the lazily loaded modules."""
    probe = (
        "import json, sys\n"
        "import function_app\n"
        f"lazy = {LAZY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {l.split('.')[0] for l in lazy}"
        " and any(m == l or m.startswith(l + '.') for l in lazy))))\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter, a fixed program
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []
