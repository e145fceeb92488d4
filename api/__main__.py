"""`python -m api [COMMAND]`: the ScraperSky service's command line.

    python -m api             run the whole service (the same as `python -m api serve`)
    python -m api serve       scrapyd + the HTTP API, supervised (see api/service.py)
    python -m api web         one HTTP server process (what `serve` runs API_WORKERS of; docker-compose)
    python -m api keys ...    create, list and revoke API keys; print their webhook secrets (api/keys_cli.py)

Each command takes --help. More commands are added as subparsers in `build_parser` below.
"""

from __future__ import annotations

import argparse
import sys

SERVE_HELP = """\
Starts scrapyd from the repository (the `scrapersky` project of scrapy.cfg, no egg; state in ./dbs and
./logs) unless API_START_SCRAPYD=0, and API_WORKERS waitress processes sharing the API port, each with
a dispatcher thread. A process that dies is restarted with back-off; SIGTERM or Ctrl-C stops all.
scrapyd gets basic auth: SCRAPYD_USERNAME (scrapersky) and SCRAPYD_PASSWORD, from the environment or
the env file, where a random password is generated on first start.

environment (also read from the env file, .env in the repository folder or $SCRAPERSKY_ENV_FILE):
  DATABASE_URL         database (default: SQLite ./scrapersky.db in the repository folder)
  API_HOST, API_PORT   where the API listens (127.0.0.1, 8000)
  API_WORKERS          web processes (2); API_THREADS: threads each (4)
  API_READ_TIMEOUT     seconds a connection may stay idle, mid-request or between requests (30)
  API_CONNECTION_LIMIT open connections per web process (1000)
  SCRAPYD_HTTP_PORT    port of the scrapyd started here (6800); SCRAPYD_LOGFILE its log
  SCRAPYD_URL          scrapyd node(s), comma-separated (default: the scrapyd started here)
  API_START_SCRAPYD=0  do not start scrapyd; API_RUN_DISPATCHER=0: serve only
  (the dispatch and limit settings are listed in api/README.md)
"""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints the usage too)
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m api", description="ScraperSky: the HTTP API over scrapyd.",
                                     epilog="Without a command: serve. `python -m api COMMAND --help` for more.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run scrapyd and the API, supervised (the default)", description=SERVE_HELP,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    web = sub.add_parser("web", help="run one HTTP server process (no scrapyd, no supervision)",
                         description="One waitress process serving the API on API_HOST:API_PORT, "
                                     "with a dispatcher thread unless API_RUN_DISPATCHER=0.")
    web.add_argument("--fd", type=int, help=argparse.SUPPRESS)  # the listening socket inherited from `serve`
    sub.add_parser("keys", help="create, list and revoke API keys (`python -m api keys --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:  # its own argparse: api/keys_cli.py
        from api import keys_cli

        return keys_cli.main(argv[1:])
    args = build_parser().parse_args(argv)
    from api import service

    if args.command == "web":
        return service.serve_web(args.fd)
    return service.serve()


if __name__ == "__main__":
    sys.exit(main())
