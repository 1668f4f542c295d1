"""The `seatkeeper` command for admins. Each subcommand lives in its own module and registers itself here.

A subcommand module exposes `register(subparsers) -> None`, adding a parser whose `func` default takes the
parsed namespace and returns an exit code. Add the module's name to SUBCOMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

# Modules under seatkeeper.cli that contribute subcommands, in help order.
SUBCOMMANDS: tuple[str, ...] = (
    "serve",
    "clock",
    "policy",
    "deadletters",
    "permissions",
    "subscriptions",
    "admit",
    "reprocess",
    "diagnose",
    "seats",
    "groups",
    "incidents",
    "rollout",
    "whatif",
    "held",
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree, built from the registered subcommand modules."""
    parser = argparse.ArgumentParser(
        prog="seatkeeper", description=__doc__.splitlines()[0] if __doc__ else None
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"seatkeeper.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `seatkeeper` console script and of `python -m seatkeeper`."""
    args = build_parser().parse_args(argv)
    func = cast(Callable[[argparse.Namespace], int], args.func)
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
