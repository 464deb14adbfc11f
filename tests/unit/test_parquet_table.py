"""The Parquet table (exporter/parquet_table.py): typed rows, one object per
partition, rebuilt whole after every commit, and no cost for invocations that
do not commit."""

from __future__ import annotations

import dataclasses
import gzip
import io
import subprocess
import sys
import threading
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from arro3.io import read_parquet

from exporter import parquet_table
from exporter.config import Settings, load_settings
from exporter.errors import ConfigError, TransientError
from exporter.run import commit
from exporter.run.parallel import THREADS
from exporter.run.start import enqueue_windows, plan_runs
from exporter.schema import COLUMNS
from tests.fakes import MemoryStore, ScriptedPages
from tests.unit.test_runs import make, request, run_all

ROOT = Path(__file__).resolve().parents[2]
RUN = "20230601T000000000Z-b5-0123abcd"
PARTITION = "wifi/metrics/brand_id=5/dt=2023-06-01/"
TARGET = "wifi/metrics_parquet/brand_id=5/dt=2023-06-01/part.parquet"


def gz(*lines: str) -> bytes:
    return gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0)


LINE_A = (
    '{"location_id":1,"reference_number":"US0001","ts":"2023-06-01 10:00:00",'
    '"time_basis":"utc","visits":7,"dwell_time_ms":120000,"extra":{"fooBar":3},'
    f'"run_id":"{RUN}"}}'
)
LINE_B = (
    '{"location_id":2,"zone_id":"0f0e","ts":"2023-06-01 23:00:00","time_basis":"local",'
    f'"visits":0,"run_id":"{RUN}","utc_offset":"+02:00"}}'
)


def rows_of(body: bytes) -> list[dict[str, Any]]:
    """The Parquet object's rows, read by arro3 (the writer's own library)."""
    out: list[dict[str, Any]] = []
    for batch in read_parquet(io.BytesIO(body)):
        columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        out.extend(
            dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)
        )
    return out


def test_the_module_and_the_handler_import_without_the_parquet_library() -> None:
    code = (
        "import sys, app, exporter.parquet_table, exporter.run.commit;"
        "print(sorted(m for m in sys.modules if m.startswith('arro3')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT / "functions" / "exporter",
        env={"PATH": "/usr/bin:/bin", "POWERTOOLS_TRACE_DISABLED": "true"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"


def test_encode_writes_typed_zstd_rows_that_duckdb_reads_back(tmp_path: Path) -> None:
    body, rows = parquet_table.encode([gz(LINE_A), gz(LINE_B)], "sources")
    assert body is not None and rows == 2
    path = tmp_path / "part.parquet"
    path.write_bytes(body)
    con = duckdb.connect()
    types = dict(
        con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()[i][:2]
        for i in range(len(COLUMNS))
    )
    assert types["ts"] == "TIMESTAMP"
    assert types["visits"] == "BIGINT"
    assert types["extra"] == "MAP(VARCHAR, BIGINT)"
    assert list(types) == [name for name, _ in COLUMNS]  # every column, in table order
    codecs = {
        c
        for (c,) in con.execute(
            "SELECT compression FROM parquet_metadata(?)", [str(path)]
        ).fetchall()
    }
    assert codecs == {"ZSTD"}
    got = con.execute(
        "SELECT location_id, zone_id, ts, visits, dwell_time_ms, extra, utc_offset"
        " FROM read_parquet(?)",
        [str(path)],
    ).fetchall()
    assert got == [
        (1, None, datetime(2023, 6, 1, 10), 7, 120000, {"fooBar": 3}, None),
        (2, "0f0e", datetime(2023, 6, 1, 23), 0, None, None, "+02:00"),
    ]
    # A partition key (in the object's path), not a column of the file, as in Glue.
    assert "time_basis" not in rows_of(body)[1]


def test_a_day_parsed_in_many_batches_is_still_one_row_group_in_order(tmp_path: Path) -> None:
    """The reader parses READ_BATCH_ROWS at a time (CPU), the writer keeps one row group
    a day (Athena), and a multi-member object (two gzip members) reads whole."""
    count = parquet_table.READ_BATCH_ROWS * 2 + 7
    lines = [LINE_A.replace('"location_id":1,', f'"location_id":{n + 1},') for n in range(count)]
    half = count // 2
    two_members = gz(*lines[half : half + 3]) + gz(*lines[half + 3 :])
    body, rows = parquet_table.encode([gz(*lines[:half]), two_members])
    assert body is not None and rows == count
    path = tmp_path / "part.parquet"
    path.write_bytes(body)
    con = duckdb.connect()
    groups = con.execute(
        "SELECT DISTINCT row_group_id, row_group_num_rows FROM parquet_metadata(?)", [str(path)]
    ).fetchall()
    assert groups == [(0, count)]
    ids = [
        i for (i,) in con.execute("SELECT location_id FROM read_parquet(?)", [str(path)]).fetchall()
    ]
    assert ids == list(range(1, count + 1))


def test_encode_of_no_rows_is_none() -> None:
    assert parquet_table.encode([gz(), gzip.compress(b"", mtime=0)]) == (None, 0)


def test_twin_key_keeps_the_partition_path_and_refuses_other_keys() -> None:
    assert parquet_table.twin_key(PARTITION, "wifi/metrics", "wifi/metrics_parquet") == TARGET
    deeper = "wifi/metrics/brand_id=5/time_basis=utc/dt=2023-06-01/"
    assert parquet_table.twin_key(deeper, "wifi/metrics", "pq").endswith(
        "pq/brand_id=5/time_basis=utc/dt=2023-06-01/part.parquet"
    )
    with pytest.raises(ValueError, match="not a partition"):
        parquet_table.twin_key("wifi/other/brand_id=5/", "wifi/metrics", "pq")


def ours(key: str) -> bool:
    return key.endswith(".json.gz")


def test_rebuild_takes_our_objects_only_and_deletes_an_emptied_day() -> None:
    store = MemoryStore()
    store.put(PARTITION + f"{RUN}-w0-s0.json.gz", gz(LINE_A))
    store.put(PARTITION + f"{RUN}-w0-s1.json.gz", gz(LINE_B))
    store.put(PARTITION + "someone-elses.csv", b"a,b\n")
    assert parquet_table.rebuild(store, PARTITION, TARGET, ours=ours) == 2
    assert [r["location_id"] for r in rows_of(store.objects[TARGET])] == [1, 2]
    store.delete([k for k in list(store.objects) if k.endswith(".json.gz")])
    assert parquet_table.rebuild(store, PARTITION, TARGET, ours=ours) == 0
    assert TARGET not in store.objects


def rebuild_six_days(store: MemoryStore) -> list[str]:
    """Six days of one object each, rebuilt as one commit's batch; the partitions."""
    days = [f"wifi/metrics/brand_id=5/dt=2023-06-0{d}/" for d in range(1, 7)]
    for day in days:
        store.put(day + f"{RUN}-w0-s0.json.gz", gz(LINE_A))
    rows = parquet_table.rebuild_all(store, days, "wifi/metrics", "wifi/metrics_parquet", ours=ours)
    assert sorted(rows.values()) == [1] * len(days)
    return days


def test_days_rebuilt_side_by_side_are_encoded_one_at_a_time_on_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The encodings of a commit's days share one thread (and so one allocator arena:
    spread over the pool, each day's Arrow buffers stayed in their thread's arena and
    the peak RSS grew with the days; docs/performance.md, "Flat memory")."""
    real_encode = parquet_table.encode
    threads: list[str] = []
    running: list[int] = [0, 0]  # now, most at once

    def watched(bodies: Any, source: str = "") -> tuple[bytes | None, int]:
        running[0] += 1
        running[1] = max(running)
        threads.append(threading.current_thread().name)
        time.sleep(0.01)  # long enough for a second encoding to start if it could
        try:
            return real_encode(bodies, source)
        finally:
            running[0] -= 1

    monkeypatch.setattr(parquet_table, "encode", watched)
    days = rebuild_six_days(MemoryStore())
    assert running[1] == 1, "two days encoded at once"
    assert len(threads) == len(days) and set(threads) == {threads[0]}
    assert threads[0].startswith("parquet")


def test_days_rebuilt_side_by_side_hold_at_most_two_days_objects_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch of days reads each day's objects just before its turn at the encoder,
    not all first: the day encoding and the next one (docs/performance.md, "Flat
    memory"; at 8,000 locations a day's objects are about 5 MB), and hands the freed
    heap back after each day."""
    real_encode = parquet_table.encode
    held: list[int] = [0, 0]  # objects read and not yet encoded: now, most at once
    lock = threading.Lock()

    class CountingStore(MemoryStore):
        def get(self, key: str) -> bytes | None:
            with lock:
                held[0] += 1
                held[1] = max(held)
            return super().get(key)

    def watched(bodies: Any, source: str = "") -> tuple[bytes | None, int]:
        time.sleep(0.01)  # long enough for the other days to read if they could
        try:
            return real_encode(bodies, source)
        finally:
            with lock:
                held[0] -= len(bodies)

    trims: list[int] = []
    monkeypatch.setattr(parquet_table, "encode", watched)
    monkeypatch.setattr(parquet_table, "release_free_memory", lambda: trims.append(held[0]))
    days = rebuild_six_days(CountingStore())
    assert held == [0, parquet_table.READ_AHEAD_DAYS]
    # The free heap goes back before the first day and after each: the pool threads
    # that read the days keep what they freed in their own arenas otherwise.
    assert len(trims) == 1 + len(days)


@dataclasses.dataclass
class RacingStore(MemoryStore):
    """Another run commits the same day while the first rebuild is being written."""

    races: int = 1

    def put(self, key: str, body: Any, content_type: str = "application/json") -> None:
        super().put(key, body, content_type)
        if key == TARGET and self.races:
            self.races -= 1
            super().put(PARTITION + f"{RUN}-w{self.races + 1}-s0.json.gz", gz(LINE_B))


def test_a_partition_changed_during_the_rebuild_is_rebuilt_again() -> None:
    store = RacingStore()
    store.put(PARTITION + f"{RUN}-w0-s0.json.gz", gz(LINE_A))
    assert parquet_table.rebuild(store, PARTITION, TARGET, ours=ours) == 2
    assert len(rows_of(store.objects[TARGET])) == 2


def test_a_partition_that_never_settles_fails_transiently() -> None:
    store = RacingStore(races=100)
    store.put(PARTITION + f"{RUN}-w0-s0.json.gz", gz(LINE_A))
    with pytest.raises(TransientError, match="changed under"):
        parquet_table.rebuild(store, PARTITION, TARGET, ours=ours)


def parquet_objects(store: MemoryStore) -> dict[str, bytes]:
    return {k: v for k, v in store.objects.items() if k.startswith("wifi/metrics_parquet/")}


def test_a_run_commits_one_parquet_object_per_day_with_the_json_rows(settings: Settings) -> None:
    on = dataclasses.replace(settings, parquet_prefix="wifi/metrics_parquet", window_days=1)
    ctx, store, queue, _ = make(on, ScriptedPages())
    (started,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 3)))
    enqueue_windows(ctx, started)
    run_all(ctx, queue)
    objects = parquet_objects(store)
    assert sorted(objects) == [
        f"wifi/metrics_parquet/brand_id=5/time_basis=utc/dt=2023-06-0{d}/part.parquet"
        for d in (1, 2, 3)
    ]
    for key, body in objects.items():
        partition = key.replace("metrics_parquet", "metrics").removesuffix("part.parquet")
        json_rows = [
            line
            for k, v in store.objects.items()
            if k.startswith(partition) and k.endswith(".json.gz")
            for line in gzip.decompress(v).splitlines()
        ]
        assert len(rows_of(body)) == len(json_rows) > 0


def test_a_run_with_parquet_off_writes_none(settings: Settings) -> None:
    ctx, store, queue, _ = make(settings, ScriptedPages())
    (started,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1)))
    enqueue_windows(ctx, started)
    run_all(ctx, queue)
    assert store.objects and parquet_objects(store) == {}


REQUIRED = {"SECRET_ID": "s", "BUCKET_NAME": "b", "TOPIC_ARN": "t", "QUEUE_URL": "q"}


def test_the_parquet_table_is_on_by_default_and_can_be_turned_off() -> None:
    assert load_settings(REQUIRED).parquet_prefix == "wifi/metrics_parquet"
    moved = load_settings({**REQUIRED, "PARQUET_PREFIX": "/lake/pq/"})
    assert moved.parquet_prefix == "lake/pq"
    assert load_settings({**REQUIRED, "PARQUET_ENABLED": "False"}).parquet_prefix is None


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"PARQUET_ENABLED": "no"}, "PARQUET_ENABLED"),
        ({"PARQUET_PREFIX": "wifi/metrics/pq"}, "PARQUET_PREFIX: must not overlap DATA_PREFIX"),
        ({"PARQUET_PREFIX": "wifi"}, "PARQUET_PREFIX: must not overlap DATA_PREFIX"),
        ({"PARQUET_PREFIX": "wifi/_exports"}, "PARQUET_PREFIX: must not overlap STATE_PREFIX"),
        ({"PARQUET_PREFIX": "a/../b"}, "PARQUET_PREFIX"),
    ],
)
def test_a_bad_parquet_setting_names_its_variable(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings({**REQUIRED, **overrides})


def test_a_commit_out_of_time_keeps_its_rebuilt_days_and_the_next_holder_does_the_rest(
    settings: Settings,
) -> None:
    on = dataclasses.replace(settings, parquet_prefix="wifi/metrics_parquet", window_days=5)
    ctx, store, queue, _ = make(on, ScriptedPages())
    (started,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 10)))
    enqueue_windows(ctx, started)
    run_all(ctx, queue)
    plan = ctx.ledger.plan(started.run_id)
    keys = ctx.keys(plan)
    # As if the holder had died before any Parquet rebuild: no objects, no marks.
    store.delete([k for k in list(store.objects) if "metrics_parquet/" in k or "/parquet/" in k])
    store.delete([keys.committed])
    # Time for one batch of days, then none: the hand-over.
    clock = iter([on.time_safety_margin_ms])
    with pytest.raises(TransientError, match="continues in the next invocation"):
        commit.commit_run(ctx, plan, keys, remaining_ms=lambda: next(clock, 1))
    marks = [k for k in store.objects if k.startswith(keys.parquet_done_prefix)]
    assert len(marks) == THREADS and keys.committed not in store.objects
    puts: list[str] = []
    original = store.put

    def counting_put(key: str, body: Any, content_type: str = "application/json") -> None:
        puts.append(key)
        original(key, body, content_type)

    store.put = counting_put  # type: ignore[method-assign]
    commit.commit_run(ctx, plan, keys, remaining_ms=lambda: 600_000)
    # Only the two days left were rebuilt (the first of each window has rows).
    assert sorted(k.rsplit("dt=", 1)[1] for k in puts if "/parquet/" in k) == [
        "2023-06-09.json",
        "2023-06-10.json",
    ]
    assert [k for k in puts if k.endswith(".parquet")] == []  # those two have no rows
    assert sorted(parquet_objects(store)) == [
        f"wifi/metrics_parquet/brand_id=5/time_basis=utc/dt=2023-06-0{d}/part.parquet"
        for d in (1, 6)
    ]
    assert keys.committed in store.objects


def test_a_holder_sizes_its_parquet_batches_by_the_time_it_measured() -> None:
    left = [1_000]  # inside a 2 s margin, whose floor is 500 ms
    sizes = commit._BatchSizes(2_000, lambda: left[0])
    assert sizes.next(first=True) == 1  # inside the margin: one day, whatever the time
    sizes.took(1, 0.1)  # ... which took 100 ms
    assert sizes.next(first=False) == 5  # 500 ms above the floor: five more such days
    sizes.took(5, 1.0)  # 200 ms a day, now
    left[0] = 900
    assert sizes.next(first=False) == 2
    left[0] = 600
    assert sizes.next(first=False) == 0  # a day would end below the floor: hand over
    left[0] = 10**6
    assert sizes.next(first=False) == THREADS  # never more than the threads
    assert commit._BatchSizes(2_000, lambda: 2_000).next(first=True) == THREADS
    assert commit._BatchSizes(2_000, None).next(first=False) == THREADS
