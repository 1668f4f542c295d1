"""`python -m sandbox serve|generate|default-tenant`: run the sandbox tenant or write tenant files."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from pathlib import Path
from typing import Any

DEFAULT_TENANT = Path(__file__).with_name("tenants") / "default.json"


def prepare(doc: dict[str, Any]) -> dict[str, Any]:
    """Give apps marked `generateSecret` a fresh sandbox-only secret for this run."""
    for app in doc.get("apps", []):
        if app.pop("generateSecret", False) and not app.get("clientSecret"):
            app["clientSecret"] = "sbx~" + secrets.token_urlsafe(30)
    return doc


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the sandbox tenant over HTTPS on 127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--tenant", type=Path, default=DEFAULT_TENANT, help="tenant JSON file")
    serve.add_argument("--ready-file", type=Path, required=True, help="where to write the ready JSON")
    gen = sub.add_parser("generate", help="write a large tenant for benchmarks")
    gen.add_argument("--users", type=int, default=100_000)
    gen.add_argument("--groups", type=int, default=10)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--out", type=Path, required=True)
    default = sub.add_parser("default-tenant", help="regenerate sandbox/tenants/default.json")
    default.add_argument("--out", type=Path, default=DEFAULT_TENANT)
    args = parser.parse_args(argv)

    from sandbox import tenant_gen

    if args.command == "generate":
        args.out.write_text(json.dumps(tenant_gen.large_tenant(args.users, args.groups, args.seed)))
        return 0
    if args.command == "default-tenant":
        args.out.write_text(json.dumps(tenant_gen.default_tenant(), indent=1) + "\n")
        return 0
    from sandbox.server import serve as run_server

    doc = prepare(json.loads(args.tenant.read_text()))
    asyncio.run(run_server(doc, args.port, args.ready_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
