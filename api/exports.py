"""Streamed URL exports: `GET /api/v1/jobs/{id}/urls` and `GET /api/v1/batches/{id}/urls` as csv, jsonl
or parquet (the paged `format=json` listing is `api/resources/results.py`'s own).

Every format holds the rows of `pipelines/rows.py` (a batch's rows lead with `domain` and `job_id`), byte
for byte what that module's formatter writes, without a Python dict per row: the database formats the
values (`Store._export_values`: lastmod as its ISO text, nested values as their JSON text).

- PostgreSQL, unless a row is one it would write differently from Python (`Store.copy_export`; the
  crawler never stores one): the database's own COPY writes the CSV lines, or the JSON lines, read by
  a thread and handed to the response in pieces of whole rows through a bounded queue (`_Copy`);
  parquet is Arrow's CSV reader over that COPY's CSV.
- Otherwise, and on SQLite: rows as tuples (`Store.export_rows`) through the csv module, `api.http.dumps`
  or `pyarrow.array`.
- parquet: row groups of `PARQUET_ROW_GROUP_ROWS` rows, each sent once written (the footer last):
  strings, lastmod `timestamp[us, UTC]`, priority `double`, nested values as the JSON text of the CSV.

csv and jsonl are gzip-compressed on the fly (level `GZIP_LEVEL`) when the request accepts gzip; parquet
is compressed already (snappy pages) and never is. Memory stays bounded: a few pieces of `CHUNK_BYTES`,
or one row group.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import threading
import zlib
from collections.abc import Callable, Generator, Iterator
from typing import Any

import falcon

from api.http import dumps
from api.store import JSONL_MARK, Store, UrlExport

CHUNK_BYTES = 256 * 1024  # bytes per piece handed to the server (and per gzip flush)
QUEUE_CHUNKS = 8  # pieces a COPY may read ahead of a slow client
GZIP_LEVEL = 1  # on a URL list: 1/3 of level 6's time, output ~20% larger
PARQUET_ROW_GROUP_ROWS = 65_536

FORMATS = {  # format: (Content-Type, file extension)
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/x-ndjson; charset=utf-8", "jsonl"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
}


def respond(req: falcon.Request, resp: falcon.Response, store: Store, what: UrlExport, fmt: str, name: str) -> None:
    """Stream the export `what` in `fmt` (a key of FORMATS) as the download `name`.<extension>."""
    content_type, extension = FORMATS[fmt]
    resp.content_type = content_type
    resp.downloadable_as = f"{name}.{extension}"
    if fmt == "parquet":
        resp.stream = parquet_body(store, what)
    else:
        stream_gzip(req, resp, (csv_body if fmt == "csv" else jsonl_body)(store, what))


def csv_body(store: Store, what: UrlExport) -> Generator[bytes, None, None]:
    """The CSV export: header line, then one line per URL (QUOTE_MINIMAL, "\n" line ends)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(what.columns)
    if store.is_postgres:
        copy = _Copy(store, what, "csv", buf.getvalue().encode("utf-8"))
        if copy.plain():
            yield from copy
            return
    for rows in store.export_rows(what, "cells"):
        writer.writerows(rows)
        if buf.tell() >= CHUNK_BYTES:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode("utf-8")


def jsonl_body(store: Store, what: UrlExport) -> Generator[bytes, None, None]:
    """One JSON object per line (the objects of the `format=json` listing)."""
    if store.is_postgres:
        copy = _Copy(store, what, "jsonl", each_row=_jsonl_row)
        if copy.plain():
            yield from copy
            return
    columns = what.columns
    for rows in store.export_rows(what, "values"):
        yield "".join([dumps(dict(zip(columns, row))) + "\n" for row in rows]).encode("utf-8")


_MARK = JSONL_MARK.encode()


def _jsonl_row(row: bytes) -> bytes:
    """A JSON line from COPY's text format: backslashes undoubled; a marked line (nested values in
    jsonb's text) made compact by `dumps`, as the Python path makes it."""
    if row[:1] == _MARK:
        return dumps(json.loads(row[1:].replace(b"\\\\", b"\\"))).encode("utf-8") + b"\n"
    return row.replace(b"\\\\", b"\\")


class _Stopped(Exception):
    """The response was closed (client gone): the COPY stops."""


_END = object()
_NOT_PLAIN = object()


class _Copy:
    """`header`, then the rows of PostgreSQL's COPY of an export (`Store.copy_export`), from a thread
    started by `plain`, in pieces of whole rows (about CHUNK_BYTES each) passed through a queue of
    QUEUE_CHUNKS pieces: a slow reader holds the COPY back, and closing the iterator ends it.
    `each_row`, if given, rewrites each row's bytes."""

    def __init__(self, store: Store, what: UrlExport, fmt: str, header: bytes = b"",
                 each_row: Callable[[bytes], bytes] | None = None) -> None:
        self._args = (store, what, fmt, header, each_row)
        self._pieces: queue.Queue[Any] = queue.Queue(QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._first: Any = None

    def plain(self) -> bool:
        """Start the COPY; False (and nothing to read) when the export has rows it does not write."""
        threading.Thread(target=self._run, name="export-copy", daemon=True).start()
        try:
            self._first = self._get()
        except BaseException:
            self.close()
            raise
        return self._first is not _NOT_PLAIN

    def __iter__(self) -> Generator[bytes, None, None]:
        try:
            item = self._first
            while item is not _END:
                yield item
                item = self._get()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the COPY (its thread stops at its next row)."""
        self._stop.set()

    def _get(self) -> Any:
        item = self._pieces.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def _put(self, item: Any) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                self._pieces.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        store, what, fmt, header, each_row = self._args
        parts = [header]
        size = len(header)
        limit = CHUNK_BYTES

        def flush() -> None:
            self._put(b"".join(parts))
            parts.clear()

        def write(row: bytes) -> None:  # psycopg2 calls it once per row
            nonlocal size
            if each_row is not None:
                row = each_row(row)
            parts.append(row)
            size += len(row)
            if size >= limit:
                flush()
                size = 0

        try:
            if store.copy_export(what, fmt, write):
                if size:
                    flush()
                self._put(_END)
            else:
                self._put(_NOT_PLAIN)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - raised again in the reader's thread
            try:
                self._put(exc)
            except _Stopped:
                pass


def parquet_body(store: Store, what: UrlExport) -> Generator[bytes, None, None]:
    """Parquet, one row group per PARQUET_ROW_GROUP_ROWS rows, each handed on once written. On PostgreSQL,
    Arrow's CSV reader parses the COPY's CSV (in which an empty string is quoted, a null is not);
    otherwise the rows come as tuples from `Store.export_rows`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text, stamp = pa.string(), pa.timestamp("us", tz="UTC")
    types = {name: {"lastmod": stamp, "priority": pa.float64()}.get(name, text) for name in what.columns}
    schema = pa.schema(list(types.items()))
    sink = _Drained()
    writer = pq.ParquetWriter(sink, schema)
    copy = _Copy(store, what, "csv-nulls") if store.is_postgres else None
    try:
        if copy is not None and copy.plain():
            batches = _copied_batches(iter(copy), types)
        else:
            batches = _tuple_batches(store, what, types)
        pending: list[Any] = []
        count = 0
        for batch in batches:
            pending.append(batch)
            count += batch.num_rows
            while count >= PARQUET_ROW_GROUP_ROWS:
                table = pa.Table.from_batches(pending, schema)
                writer.write_table(table.slice(0, PARQUET_ROW_GROUP_ROWS), row_group_size=PARQUET_ROW_GROUP_ROWS)
                rest = table.slice(PARQUET_ROW_GROUP_ROWS)
                pending, count = rest.to_batches(), rest.num_rows
                yield sink.drain()
        if count:
            writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=count)
    finally:
        if copy is not None:
            copy.close()
        writer.close()
    yield sink.drain()


def _copied_batches(pieces: Iterator[bytes], types: dict[str, Any]) -> Iterator[Any]:
    import pyarrow.csv

    parse = pyarrow.csv.ParseOptions(newlines_in_values=True)
    convert = pyarrow.csv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                         quoted_strings_can_be_null=False)
    for piece in pieces:  # whole rows, in one block (Arrow refuses a row that straddles two)
        read = pyarrow.csv.ReadOptions(column_names=list(types), block_size=len(piece) + 1, use_threads=False)
        yield from pyarrow.csv.read_csv(pyarrow.py_buffer(piece), read_options=read, parse_options=parse,
                                        convert_options=convert).to_batches()


def _tuple_batches(store: Store, what: UrlExport, types: dict[str, Any]) -> Iterator[Any]:
    import pyarrow as pa

    text = pa.string()
    for rows in store.export_rows(what, "cells"):
        arrays = []
        for (name, kind), values in zip(types.items(), zip(*rows)):
            if name == "lastmod":  # its ISO text with a Z (Arrow's ISO 8601 parser)
                arrays.append(pa.array(values, text).cast(kind))
            else:
                arrays.append(pa.array(values, kind))
        yield pa.RecordBatch.from_arrays(arrays, schema=pa.schema(list(types.items())))


class _Drained(io.RawIOBase):
    """A write-only file whose bytes are taken out by `drain`."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        self._size += len(data)
        return len(data)

    def tell(self) -> int:
        return self._size

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def stream_gzip(req: falcon.Request, resp: falcon.Response, body: Generator[bytes, None, None]) -> None:
    """Stream `body` (a generator of bytes), gzip-compressed on the fly when the client accepts gzip."""
    resp.append_header("Vary", "Accept-Encoding")
    if "gzip" not in (req.get_header("Accept-Encoding") or "").lower():
        resp.stream = body
        return
    resp.set_header("Content-Encoding", "gzip")

    def gz() -> Iterator[bytes]:
        z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        try:
            for part in body:
                out = z.compress(part) + z.flush(zlib.Z_SYNC_FLUSH)
                if out:
                    yield out
            yield z.flush()
        finally:
            body.close()  # a response closed early stops the export (e.g. its COPY) at once
    resp.stream = gz()
