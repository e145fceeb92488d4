"""Streamed URL exports: `GET /api/v1/jobs/{id}/urls` and `GET /api/v1/batches/{id}/urls` as csv, jsonl
or parquet (the paged `format=json` listing is `api/resources/results.py`'s own).

Every format holds the rows of `pipelines/rows.py` (a batch's rows lead with `domain` and `job_id`), byte
for byte what that module's formatter writes, without building a Python dict per row:

- The database formats the values (`Store._export_columns`: lastmod as its ISO text, nested values as
  their JSON text). On PostgreSQL the CSV is the database's own `COPY ... TO STDOUT WITH (FORMAT csv)`,
  read by a thread and handed to the response in chunks through a bounded queue (`_copied`), when
  `Store.export_plain` finds no row that PostgreSQL would write differently from Python (the crawler
  never stores one; otherwise, and on SQLite, the csv module writes the rows as tuples).
- jsonl: one `api.http.dumps` per row of JSON values.
- parquet: pyarrow row groups of `PARQUET_ROW_GROUP_ROWS` rows, each sent once written (the footer last):
  strings, lastmod `timestamp[us, UTC]`, priority `double`, nested values as the JSON text of the CSV.

csv and jsonl are gzip-compressed on the fly (level `GZIP_LEVEL`) when the request accepts gzip; parquet
is already compressed (snappy pages) and never is. Memory stays bounded: a few chunks of `CHUNK_BYTES`,
or one row group.
"""

from __future__ import annotations

import csv
import io
import queue
import threading
import zlib
from collections.abc import Generator, Iterator
from typing import Any

import falcon

from api.http import dumps
from api.store import Store, UrlExport

CHUNK_BYTES = 256 * 1024  # bytes per piece handed to the server (and per gzip flush)
QUEUE_CHUNKS = 8  # pieces a COPY may read ahead of a slow client
GZIP_LEVEL = 1  # ~2x the size of level 6 on URL lists, at a fraction of the time
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
        store.export_plain(what)
        resp.stream = parquet_body(store, what)
        return
    if fmt == "csv":
        body = csv_body(store, what)
    else:
        body = jsonl_body(store, what)
    stream_gzip(req, resp, body)


def csv_body(store: Store, what: UrlExport) -> Iterator[bytes]:
    """The CSV export: header line, then one line per URL (QUOTE_MINIMAL, "\n" line ends)."""
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(what.columns)
    if store.export_plain(what):
        return _copied(store, what, "csv", header.getvalue().encode("utf-8"))
    return _written(store, what, header)


def _written(store: Store, what: UrlExport, buf: io.StringIO) -> Iterator[bytes]:
    writer = csv.writer(buf, lineterminator="\n")
    for rows in store.export_rows(what, "cells"):
        writer.writerows(rows)
        if buf.tell() >= CHUNK_BYTES:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode("utf-8")


def jsonl_body(store: Store, what: UrlExport) -> Iterator[bytes]:
    """One JSON object per line (the objects of the `format=json` listing)."""
    if store.export_plain(what):
        return _undoubled(_copied(store, what, "jsonl", b""))
    return _dumped(store, what)


def _dumped(store: Store, what: UrlExport) -> Iterator[bytes]:
    columns = what.columns
    for rows in store.export_rows(what, "values"):
        yield "".join([dumps(dict(zip(columns, row))) + "\n" for row in rows]).encode("utf-8")


def _undoubled(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """COPY's text format with every backslash doubled (the only escape in JSON lines) -> the lines.
    A piece may end between the two backslashes of a pair: the first one waits for the next piece."""
    carry = b""
    try:
        for piece in pieces:
            piece = carry + piece
            carry = b""
            if (len(piece) - len(piece.rstrip(b"\\"))) % 2:
                piece, carry = piece[:-1], b"\\"
            yield piece.replace(b"\\\\", b"\\")
    finally:
        pieces.close()


class _Stopped(Exception):
    """The response was closed (client gone): the COPY stops."""


_END = object()


def _copied(store: Store, what: UrlExport, fmt: str, header: bytes) -> Generator[bytes, None, None]:
    """`header`, then the bytes of PostgreSQL's COPY (`Store.copy_export`), run by a thread started on the
    first read. psycopg2 writes each row to a BufferedWriter (C), whose buffer is queued whenever it
    fills; the queue holds QUEUE_CHUNKS pieces, so a slow client holds the COPY back, and closing the
    response ends it."""
    pieces: queue.Queue[Any] = queue.Queue(QUEUE_CHUNKS)
    stop = threading.Event()

    def put(item: Any) -> None:
        while True:
            if stop.is_set():
                raise _Stopped
            try:
                pieces.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    class Pieces(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            put(bytes(data))
            return len(data)

    def run() -> None:
        try:
            out = io.BufferedWriter(Pieces(), CHUNK_BYTES)
            out.write(header)
            store.copy_export(what, fmt, out.write)
            out.flush()
            put(_END)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - raised again in the response's thread
            try:
                put(exc)
            except _Stopped:
                pass

    thread = threading.Thread(target=run, name="export-copy", daemon=True)
    thread.start()
    try:
        while True:
            item = pieces.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def parquet_body(store: Store, what: UrlExport) -> Iterator[bytes]:
    """Parquet, one row group per PARQUET_ROW_GROUP_ROWS rows, each handed on once written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text, stamp = pa.string(), pa.timestamp("us", tz="UTC")
    types = {"lastmod": stamp, "priority": pa.float64()}
    schema = pa.schema([(name, types.get(name, text)) for name in what.columns])
    sink = _Drained()
    writer = pq.ParquetWriter(sink, schema)

    def write(rows: list[Any]) -> None:
        columns = list(zip(*rows))
        arrays = []
        for name, values in zip(what.columns, columns):
            if name == "lastmod":  # its ISO text with a Z (Arrow's ISO 8601 parser)
                arrays.append(pa.array(values, text).cast(stamp))
            else:
                arrays.append(pa.array(values, types.get(name, text)))
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=len(rows))

    try:
        pending: list[Any] = []
        for rows in store.export_rows(what, "cells", chunk=min(5000, PARQUET_ROW_GROUP_ROWS)):
            pending.extend(rows)
            while len(pending) >= PARQUET_ROW_GROUP_ROWS:
                write(pending[:PARQUET_ROW_GROUP_ROWS])
                del pending[:PARQUET_ROW_GROUP_ROWS]
                yield sink.drain()
        if pending:
            write(pending)
    finally:
        writer.close()
    yield sink.drain()


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
