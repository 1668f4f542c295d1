"""function_app.py is indexable: importing it builds no adapter and the app object lists its functions."""

from __future__ import annotations

import importlib


def test_function_app_imports_without_side_effects() -> None:
    """Indexing imports the module; it must expose the FunctionApp and nothing must run."""
    module = importlib.import_module("function_app")
    assert module.app is not None
