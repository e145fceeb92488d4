"""A small client for scrapyd's JSON API (schedule, cancel, listjobs, daemonstatus).

scrapyd answers errors with HTTP 200 and `{"status": "error", "message": ...}`: those raise
`ScrapydError`; a node that cannot be reached (or answers 5xx / non-JSON / 401) raises
`ScrapydUnavailable`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from pipelines.db import redact_url


class ScrapydError(Exception):
    """scrapyd understood the request and refused it."""


class ScrapydUnavailable(ScrapydError):
    """The node could not be reached or did not answer sensibly."""


class ScrapydClient:
    def __init__(self, url: str, username: str | None = None, password: str | None = None,
                 timeout: float = 5.0, public_url: str | None = None) -> None:
        # Credentials written into the URL (`http://user:pw@host`) become basic auth; the node is known,
        # stored, logged and shown by its URL without them.
        parts = urlsplit(url)
        if not username and parts.username is not None:
            username, password = unquote(parts.username), unquote(parts.password or "")
        self.url = redact_url(url).rstrip("/")
        self.public_url = redact_url(public_url or url).rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # never send our calls through an http_proxy
        if username:
            self.session.auth = (username, password or "")

    def __repr__(self) -> str:
        return f"ScrapydClient({self.url!r})"

    def _call(self, method: str, endpoint: str, timeout: float | None = None, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = self.session.request(method, f"{self.url}/{endpoint}", timeout=timeout or self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ScrapydUnavailable(f"scrapyd at {self.url} unreachable: {type(exc).__name__}") from exc
        if resp.status_code == 401:
            raise ScrapydUnavailable(f"scrapyd at {self.url} refused our credentials (401)")
        if resp.status_code >= 500:
            raise ScrapydUnavailable(f"scrapyd at {self.url} answered {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            raise ScrapydUnavailable(f"scrapyd at {self.url} answered non-JSON ({resp.status_code})") from None
        if not isinstance(data, dict):
            raise ScrapydUnavailable(f"scrapyd at {self.url} answered an unexpected document")
        if data.get("status") != "ok":
            raise ScrapydError(str(data.get("message", data)).strip().splitlines()[-1][:500])
        return data

    def daemonstatus(self) -> dict[str, Any]:
        return self._call("GET", "daemonstatus.json")

    def listjobs(self, project: str) -> dict[str, Any]:
        return self._call("GET", "listjobs.json", params={"project": project})

    def listspiders(self, project: str, timeout: float | None = None) -> list[str]:
        """The project's spiders. The first call on a scrapyd process runs `scrapy list` there (seconds),
        whose answer scrapyd keeps: later calls, and `schedule.json`'s own check, are then quick."""
        return self._call("GET", "listspiders.json", timeout=timeout, params={"project": project}).get("spiders", [])

    def schedule(self, project: str, spider: str, jobid: str, args: dict[str, str] | None = None,
                 settings: dict[str, str] | None = None, priority: float | None = None) -> str:
        data: list[tuple[str, str]] = [("project", project), ("spider", spider), ("jobid", jobid)]
        if priority is not None:
            data.append(("priority", str(priority)))
        for key, value in (settings or {}).items():
            data.append(("setting", f"{key}={value}"))
        for key, value in (args or {}).items():
            data.append((key, str(value)))
        return self._call("POST", "schedule.json", data=data)["jobid"]

    def cancel(self, project: str, jobid: str, signal: str = "TERM") -> str | None:
        """Cancel a pending or running scrapyd job; returns its previous state. A running crawl gets
        SIGTERM: Scrapy shuts down gracefully on the first, at once on the second (the reconciler
        sends it again while the crawl still runs with all its jobs cancelled)."""
        return self._call("POST", "cancel.json", data={"project": project, "job": jobid, "signal": signal}).get("prevstate")

    def log_url(self, project: str, spider: str, jobid: str) -> str:
        return f"{self.public_url}/logs/{project}/{spider}/{jobid}.log"
