"""Imports every deployed module with requirements.txt alone installed (make infra-check runs it in a clean
virtual environment): a deployed module that needs a dev-only package fails here, not in Azure."""

from __future__ import annotations

import importlib
import pkgutil
import sys

# Local tools that are packaged but never run by the Functions host.
NOT_RUN_IN_AZURE = ("seatkeeper.localhost", "seatkeeper.cli", "seatkeeper.__main__")


def main() -> int:
    """Import function_app, index its functions, import every handlers/seatkeeper module; 1 on failure."""
    function_app = importlib.import_module("function_app")
    functions = function_app.app.get_functions()
    failures: list[str] = []
    imported = 0
    for package_name in ("handlers", "seatkeeper"):
        package = importlib.import_module(package_name)
        for module in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            if module.name.startswith(NOT_RUN_IN_AZURE):
                continue
            try:
                importlib.import_module(module.name)
            except ImportError as error:
                failures.append(f"{module.name}: {error}")
            imported += 1
    print(f"runtime imports: {len(functions)} functions indexed, {imported} modules imported")
    for failure in failures:
        print(f"  cannot import with requirements.txt alone: {failure}", file=sys.stderr)
    return 1 if failures or not functions else 0


if __name__ == "__main__":
    sys.exit(main())
