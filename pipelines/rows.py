"""One row per page URL: the columns and value formats of every URL listing ScraperSky writes — the API's
`GET /api/v1/jobs/{id}/urls` and `/batches/{id}/urls` (json, jsonl, csv, parquet) and the crawl's `-O`
feeds (every format Scrapy offers). Importable without Scrapy. The API's streamed exports have the
database format the values by these rules (`api/exports.py`); tests/test_api_exports.py holds them
byte-identical to this module's output.

- `URL_COLUMNS`, in this order. `images`, `videos`, `news` and `alternates` are nested values (lists
  or an object); CSV cells hold them as JSON text.
- Timestamps are ISO 8601 in UTC with a `Z`: `2024-03-05T08:30:00Z` (fractions of a second when the
  sitemap gave them).
- A missing value is null (JSON), an empty cell (CSV) or an empty element (XML).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

URL_COLUMNS = ("url", "lastmod", "changefreq", "priority", "sitemap_url", "images", "videos", "news", "alternates")
TIME_COLUMNS = frozenset({"lastmod"})


def format_time(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`; a naive value is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat() + "Z"


def url_row(page: Mapping[str, Any]) -> dict[str, Any]:
    """The row of one page URL from a mapping holding (some of) the columns; absent ones are None."""
    row = {name: page.get(name) for name in URL_COLUMNS}
    for name in TIME_COLUMNS:
        value = row[name]
        if isinstance(value, dt.datetime):
            row[name] = format_time(value)
    return row


def csv_cell(value: Any) -> Any:
    """A row value as a CSV cell: nested values as JSON text, None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value
