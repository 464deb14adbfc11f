"""The Parquet table: one object per partition, rebuilt whole from the JSON partition.

The gzipped JSON Lines table is the landing format; this module keeps a typed,
ZSTD-compressed twin of each of its partitions (docs/contracts.md, "The Parquet
table"). Each partition has exactly one Parquet object, at a name that never
changes, so rebuilding a day is one PUT that replaces the old day with the new
one: a reader sees one or the other, never half of each, and there are never
small files to merge.

The Parquet library (arro3) is imported only when a partition is rebuilt, that
is at the end of a commit: invocations that walk pages or fan out pay nothing
for it at cold start (tests/unit/test_parquet_table.py checks).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any, Final, cast

from exporter import json_codec
from exporter.errors import TransientError
from exporter.memory import release_free_memory
from exporter.ports import ObjectStore
from exporter.run.parallel import each_at_once
from exporter.schema import COLUMNS
from exporter.zlibs import gzip

if TYPE_CHECKING:  # the library is imported lazily (see the module's docstring)
    from arro3.core import DataType, RecordBatch, Schema

# The one object of every partition (docs/contracts.md, "S3 layout").
OBJECT_NAME: Final = "part.parquet"
CONTENT_TYPE: Final = "application/vnd.apache.parquet"
# ZSTD at 3, the library's default level: levels above it cost CPU on every commit
# for about 2 % fewer bytes (docs/performance.md, "Parquet table").
COMPRESSION: Final = "zstd(3)"
# A brand-day (2,000 stores x 24 h = 48,000 rows) is one row group: Athena splits a
# file by row group, and a day is small enough to be read by one reader.
ROW_GROUP_ROWS: Final = 1_048_576
# Rows the JSON reader parses per batch. The writer still puts them all in one row
# group (ROW_GROUP_ROWS); batches of a few thousand rows stay in the CPU's caches:
# a brand-day of 15 MB of lines parsed in 55 ms instead of 150 ms with one batch of
# ROW_GROUP_ROWS, and the rebuild holds a batch, not the whole day, while parsing
# (docs/performance.md, "CPU at the floor").
READ_BATCH_ROWS: Final = 4_096
READ_BUFFER_BYTES: Final = 1 << 20
# Rebuilds of one partition that may find it changed under them (another run
# committing the same day) before the commit is retried by the next lease holder.
_ATTEMPTS: Final = 5

# Every partition is encoded on one thread, one at a time; the S3 calls around it
# go side by side on the shared pool. The encoding gains nothing from company (it
# holds the GIL: five brand-days took the same wall time one after another as side
# by side), and its Arrow buffers come from the allocator's arena of the thread
# that encodes: on the pool's threads each day's table stayed in its own arena, so
# a commit's peak RSS grew with the days it rebuilt (209 MB at 2,000 locations,
# 108 MB in the benchmark of 27 Nov; docs/performance.md, "Flat memory").
_encoder: ThreadPoolExecutor | None = None
_encoder_lock: Final = threading.Lock()
# Partitions whose JSON objects are held at once: the one being encoded and the
# next, read while it encodes. The others wait before their GETs; when all of a
# batch (up to 8 days) read first and then queued for the one encoder, their
# bodies added up to the commit's peak (docs/performance.md, "Flat memory").
READ_AHEAD_DAYS: Final = 2
_reading: Final = threading.BoundedSemaphore(READ_AHEAD_DAYS)


def _encode_on_one_thread(bodies: Sequence[bytes], source: str) -> tuple[bytes | None, int]:
    global _encoder  # noqa: PLW0603 -- one encoding thread per container, made on first use
    with _encoder_lock:
        if _encoder is None:
            _encoder = ThreadPoolExecutor(1, thread_name_prefix="parquet")
    return _encoder.submit(encode, bodies, source).result()


# A partition's JSON objects: key -> version tag (S3 ETag), as listed.
Versions = dict[str, str]


def twin_key(partition: str, data_prefix: str, parquet_prefix: str) -> str:
    """The Parquet object of a JSON partition: the same partition path (brand, and
    whatever keys the JSON layout has) under the Parquet prefix."""
    if not partition.startswith(data_prefix + "/") or not partition.endswith("/"):
        raise ValueError(f"not a partition of the JSON table: {partition[-120:]!r}")
    return f"{parquet_prefix}/{partition.removeprefix(data_prefix + '/')}{OBJECT_NAME}"


def rebuild(store: ObjectStore, partition: str, target: str, *, ours: Callable[[str], bool]) -> int:
    """Make `target` hold exactly the rows of the JSON partition's objects that are
    `ours` (run objects; foreign files are left out, as the commit leaves them alone).
    Deletes `target` when the partition has no rows. Returns the rows written.

    After the PUT the partition is listed again: if another run changed it meanwhile
    (committing the same day: an object added, deleted or rewritten has a new
    version tag), the object is rebuilt from what is there now. The last writer of
    the object has then seen the partition as it stayed, whichever run writes last.
    """
    versions = _versions(store, partition, ours)
    for _ in range(_ATTEMPTS):
        with _reading:
            # One by one: partitions are rebuilt side by side on the shared pool already.
            # An object deleted since the listing is gone from the partition too.
            read = [b for key in sorted(versions) if (b := store.get(key)) is not None]
            body, rows = _encode_on_one_thread(read, json_codec.dumps(versions).decode())
            complete = len(read) == len(versions)
            del read
        # The day's objects were read on a pool thread, into that thread's allocator
        # arena, and the encoding's buffers are in the encoder's: once freed, both
        # stayed resident, and with up to 8 pool threads a batch of days added up
        # (200-211 MB at 8,000 locations x 5 days; docs/performance.md, "Flat memory").
        release_free_memory()
        if body is None:
            store.delete([target])
        else:
            store.put(target, body, CONTENT_TYPE)
        again = _versions(store, partition, ours)
        if again == versions and complete:
            return rows
        versions = again
    raise TransientError(f"{partition}: changed under {_ATTEMPTS} Parquet rebuilds; retrying")


def rebuild_all(
    store: ObjectStore,
    partitions: Sequence[str],
    data_prefix: str,
    parquet_prefix: str,
    *,
    ours: Callable[[str], bool],
) -> dict[str, int]:
    """`rebuild` each partition, side by side (the encoding holds the GIL, the S3
    calls around it do not); rows written per Parquet object."""
    # The walk before it freed its pages and lines; give them back before the days'
    # tables are built, or they add up to the peak (exporter/memory.py).
    release_free_memory()
    targets = [twin_key(partition, data_prefix, parquet_prefix) for partition in partitions]
    rows = each_at_once(
        lambda pair: rebuild(store, pair[0], pair[1], ours=ours),
        list(zip(partitions, targets, strict=True)),
    )
    return dict(zip(targets, rows, strict=True))


def encode(bodies: Sequence[bytes], source: str = "") -> tuple[bytes | None, int]:
    """One Parquet file (bytes, rows) from gzip JSON Lines objects; (None, 0) if none
    has a row. `source` is kept in the file's metadata (which objects it was built from)."""
    from arro3.core import RecordBatchReader  # noqa: PLC0415 - lazy, see above
    from arro3.io import read_json, write_parquet  # noqa: PLC0415

    # Inflated as the reader asks for it (every member of every object, in order),
    # not joined first: a day's lines are never all in memory at once, and zlib-ng
    # inflates in a third of stdlib zlib's CPU.
    stream = io.BytesIO(b"".join(bodies))
    inflated = gzip.GzipFile(fileobj=stream)  # type: ignore[no-untyped-call,unused-ignore]
    # The reader asks for 8 KiB at a time (1,590 Python-level reads a brand-day);
    # served from a 1 MiB buffer, 2-4 ms of a 70 ms brand-day are saved.
    lines = cast("IO[bytes]", io.BufferedReader(cast("Any", inflated), READ_BUFFER_BYTES))
    # Arrow's JSON reader parses `ts` (`YYYY-MM-DD HH:MM:SS`) into a timestamp and
    # `extra` into a map; a value of the wrong type fails the rebuild (and the commit).
    schema = arrow_schema()
    reader = read_json(lines, schema, batch_size=READ_BATCH_ROWS)
    rows = 0

    def counted() -> Iterator[RecordBatch]:
        nonlocal rows
        for batch in reader:
            rows += batch.num_rows
            yield batch

    # The batches go into the writer as they are parsed, never a whole day's table
    # (24 MB more at the commit's peak for a brand-day of 8,000 locations).
    out = io.BytesIO()
    write_parquet(
        RecordBatchReader.from_batches(schema, counted()),
        out,
        compression=COMPRESSION,
        max_row_group_size=ROW_GROUP_ROWS,
        key_value_metadata={"wifi_export.sources": source} if source else None,
    )
    if not rows:
        return None, 0
    return out.getvalue(), rows


def arrow_schema() -> Schema:
    """The row schema (exporter/schema.py, partition keys excepted) as Arrow types."""
    from arro3.core import Field, Schema  # noqa: PLC0415 - lazy, see above

    return Schema([Field(name, _arrow_type(glue), nullable=True) for name, glue in COLUMNS])


def _arrow_type(glue: str) -> DataType:
    from arro3.core import DataType, Field  # noqa: PLC0415 - lazy, see above

    if glue == "bigint":
        return DataType.int64()
    if glue == "string":
        return DataType.utf8()
    if glue == "timestamp":
        # Microseconds without a time zone: `ts` is a wall-clock time in the row's
        # basis (Parquet TIMESTAMP(MICROS, isAdjustedToUTC=false)), what Athena's
        # `timestamp`, DuckDB's TIMESTAMP and pyarrow's timestamp[us] read as is.
        return DataType.timestamp("us")
    if glue == "map<string,bigint>":
        key = Field("key", DataType.utf8(), nullable=False)
        return DataType.map(key, Field("value", DataType.int64(), nullable=True), False)
    raise ValueError(f"no Parquet type for the Glue type {glue!r}")


def _versions(store: ObjectStore, partition: str, ours: Callable[[str], bool]) -> Versions:
    return {key: tag for key, tag in store.list_tagged(partition) if ours(key)}
