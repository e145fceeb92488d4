"""`python -m api keys create NAME [--tenant T] [--admin]`, `keys list`, `keys revoke NAME`,
`keys webhook-secret NAME [--rotate]`.

The database is DATABASE_URL's (as for `python -m api`; default: scrapersky.db in the repository). `create` prints
the key once on stdout (and what to do with it on stderr), so `KEY=$(python -m api keys create ci)` works.
A key's tenant defaults to its name; give several keys one `--tenant` to share work (e.g. to rotate a key).
`webhook-secret` prints the secret that signs the webhooks of the key's work on stdout
(`SECRET=$(python -m api keys webhook-secret ci)`); `--rotate` replaces it first.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from api.auth import KeyNameError, check_name, create_key, list_keys, revoke_key, webhook_secret

REPO = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m api keys", description="Manage ScraperSky API keys.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="create a key and print it once")
    c.add_argument("name")
    c.add_argument("--tenant", help="whose work the key creates and sees (default: the key's name)")
    c.add_argument("--admin", action="store_true", help="sees and cancels every tenant's work; no quotas")
    sub.add_parser("list", help="list keys (never the keys themselves)")
    r = sub.add_parser("revoke", help="revoke a key (its name stays taken)")
    r.add_argument("name")
    w = sub.add_parser("webhook-secret", help="print the secret that signs the webhooks of a key's work")
    w.add_argument("name")
    w.add_argument("--rotate", action="store_true",
                   help="replace it first (deliveries sent from then on are signed with the new one)")
    return p


def _engine():
    from sqlalchemy.engine import make_url

    from pipelines.db import database_url, get_engine

    # the same default database as `python -m api`: ./scrapersky.db of the repository folder
    url = database_url({"DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{REPO / 'scrapersky.db'}"})
    try:
        return get_engine(url)
    except Exception as exc:  # one line, without the password
        shown = make_url(url).render_as_string(hide_password=True)
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise SystemExit(f"error: cannot open the database {shown}: {detail[0] if detail else type(exc).__name__}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "create":
            check_name(args.name)
            if args.tenant is not None:
                check_name(args.tenant, "tenant")
            key = create_key(_engine(), args.name, tenant=args.tenant, admin=args.admin)
            print(f"created {'admin ' if args.admin else ''}key {args.name!r} (tenant {args.tenant or args.name!r}); "
                  "it is shown only now. Send it as 'Authorization: Bearer <key>':", file=sys.stderr)
            print(key, flush=True)
            return 0
        if args.command == "list":
            rows = list_keys(_engine())
            if not rows:
                print("no keys; create one with `python -m api keys create NAME --admin`", file=sys.stderr)
                return 0
            print(f"{'NAME':<24} {'TENANT':<24} {'ADMIN':<5} {'CREATED':<20} STATE")
            for r in rows:
                state = f"revoked {r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "active"
                print(f"{r['name']:<24} {r['tenant']:<24} {'yes' if r['is_admin'] else 'no':<5} "
                      f"{r['created_at']:%Y-%m-%d %H:%M:%S}  {state}")
            return 0
        if args.command == "webhook-secret":
            secret = webhook_secret(_engine(), args.name, rotate=args.rotate)
            if secret is None:
                print(f"error: no key named {args.name!r}", file=sys.stderr)
                return 1
            if args.rotate:
                print(f"webhook secret of key {args.name!r} replaced; deliveries are signed with it from now on:",
                      file=sys.stderr)
            print(secret, flush=True)
            return 0
        outcome = revoke_key(_engine(), args.name)
        if outcome == "missing":
            print(f"error: no key named {args.name!r}", file=sys.stderr)
            return 1
        print(f"key {args.name!r} {'revoked' if outcome == 'revoked' else 'was already revoked'}")
        return 0
    except KeyNameError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
