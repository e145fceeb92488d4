"""The console: server-rendered pages (Jinja2) over the same store, keys and tenants as the API.

Mounted at /console (and / redirects there). Its routes are `public` to the API's key middleware and
check the console's own session cookie instead (api/console/session.py). Pages: Batches, New batch,
a batch, a domain; assets come from api/console/static/ (no CDN, no build step).
"""

from __future__ import annotations

from api.console.pages import add_console

__all__ = ["add_console"]
