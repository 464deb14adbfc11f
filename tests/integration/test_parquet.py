"""The Parquet table end to end (moto + the fake API over real HTTP): after a
whole-brand run and a selection rerun over part of it, the Parquet table holds
exactly the JSON table's rows, one object per partition; compared row by row
with DuckDB and with arro3, the library that writes it."""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from arro3.io import read_parquet

from exporter.schema import PARTITION_KEYS
from local.fake_analytiks import location_ids
from local.harness import _DUCK_TYPES as DUCK
from local.harness import download_prefix, duckdb_columns
from tests.integration.conftest import Lab, expected

BRAND = 1234
FIRST, LAST = date(2023, 6, 8), date(2023, 6, 10)
PARQUET = "wifi/metrics_parquet"
PARTITIONS = [key for key, _ in PARTITION_KEYS]


@pytest.fixture
def pq_lab(make_lab: Any) -> Lab:
    lab: Lab = make_lab(brands={BRAND: 60}, page_size=50, extra_metrics=["fooBar"])
    return lab


def parquet_keys(lab: Lab) -> list[str]:
    return lab.list_keys(PARQUET + "/")


def json_partitions(lab: Lab) -> set[str]:
    data = lab.env["DATA_PREFIX"] + "/"
    return {k.removeprefix(data).rsplit("/", 1)[0] for k in lab.list_keys(data)}


def parquet_view(lab: Lab, con: Any, name: str) -> None:
    """A DuckDB view `name` over the Parquet table as it is now (downloaded)."""
    dest = lab.tmp / f"parquet-{len(list(lab.tmp.iterdir()))}"
    assert download_prefix(lab.s3, lab.bucket, PARQUET + "/", dest)
    pattern = (dest / PARQUET / "**" / "*.parquet").as_posix()
    # A local path and a name of our own making, not input: no injection.
    hive = ", ".join(f"'{key}': '{DUCK[kind]}'" for key, kind in PARTITION_KEYS)
    con.execute(
        f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{pattern}', "  # noqa: S608
        f"hive_partitioning=true, hive_types={{{hive}}})"
    )


def duckdb_rows(lab: Lab) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(JSON table rows, Parquet table rows), each sorted, as DuckDB reads them."""
    con = lab.table()  # the JSON table, typed like the Glue table
    parquet_view(lab, con, "pq")
    # MAP values compared as text; both tables typed the same way.
    names = [n if n != "extra" else "CAST(extra AS VARCHAR)" for n in duckdb_columns()]
    select = f"SELECT {', '.join([*names, *PARTITIONS])} FROM"
    json_rows = con.execute(f"{select} metrics ORDER BY ALL").fetchall()
    pq_rows = con.execute(f"{select} pq ORDER BY ALL").fetchall()
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE pq)").fetchall())
    assert types["ts"] == "TIMESTAMP" and types["extra"] == "MAP(VARCHAR, BIGINT)"
    return json_rows, pq_rows


def arro3_rows(lab: Lab) -> list[tuple[Any, ...]]:
    """The Parquet table's rows as arro3 reads them, with the partition keys of the path."""
    out: list[tuple[Any, ...]] = []
    columns = list(duckdb_columns())
    for key in parquet_keys(lab):
        path = dict(part.split("=", 1) for part in key.split("/") if "=" in part)
        keys = [
            int(path[k])
            if k == "brand_id"
            else date.fromisoformat(path[k])
            if k == "dt"
            else path[k]
            for k in PARTITIONS
        ]
        body = lab.s3.get_object(Bucket=lab.bucket, Key=key)["Body"].read()
        for batch in read_parquet(io.BytesIO(body)):
            assert batch.schema.names == columns
            values = [batch.column(name).to_pylist() for name in columns]
            out.extend((*row, *keys) for row in zip(*values, strict=True))
    return sorted(out, key=repr)


def json_rows_as_python(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """DuckDB's rows of the JSON table in arro3's Python values (map: key/value pairs)."""
    columns = list(duckdb_columns())
    extra, ts = columns.index("extra"), columns.index("ts")
    out = []
    for row in rows:
        values = list(row)
        text = values[extra]
        values[extra] = None if text is None else _map_pairs(text)
        assert isinstance(values[ts], datetime)
        out.append(tuple(values))
    return sorted(out, key=repr)


def _map_pairs(text: str) -> list[tuple[str, int]]:
    inner = text.strip("{}")
    pairs = [item.split("=", 1) for item in inner.split(", ")] if inner else []
    return [(key, int(value)) for key, value in pairs]


def arro3_python(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    columns = list(duckdb_columns())
    extra = columns.index("extra")
    out = []
    for row in rows:
        values = list(row)
        if values[extra] is not None:
            values[extra] = [
                tuple(pair.values()) if isinstance(pair, dict) else tuple(pair)
                for pair in values[extra]
            ]
        out.append(tuple(values))
    return sorted(out, key=repr)


def assert_tables_agree(lab: Lab) -> int:
    """Both tables hold the same rows, one Parquet object per JSON partition; the rows."""
    keys = parquet_keys(lab)
    assert all(key.endswith("/part.parquet") for key in keys), keys
    assert {k.removeprefix(PARQUET + "/").rsplit("/", 1)[0] for k in keys} == json_partitions(lab)
    json_rows, pq_rows = duckdb_rows(lab)
    assert json_rows, "nothing exported"
    assert pq_rows == json_rows
    assert arro3_python(arro3_rows(lab)) == json_rows_as_python(json_rows)
    return len(json_rows)


def test_whole_brand_then_a_selection_rerun_leave_both_tables_equal(pq_lab: Lab) -> None:
    span = {"brandId": BRAND, "startDate": FIRST.isoformat(), "endDate": LAST.isoformat()}
    pq_lab.run(span)
    rows = assert_tables_agree(pq_lab)
    assert rows == len(expected(pq_lab.api, BRAND, FIRST, LAST, "utc"))
    assert len(parquet_keys(pq_lab)) == 3
    first_bodies = {
        k: pq_lab.s3.head_object(Bucket=pq_lab.bucket, Key=k)["ETag"] for k in parquet_keys(pq_lab)
    }

    # A v4 selection over 10 locations on the last two days: zeros where v3 had
    # none, a new run id on their rows, every other row untouched.
    chosen = location_ids(BRAND, 60)[:10]
    rerun = {**span, "startDate": "2023-06-09", "locations": chosen, "zeroFill": True}
    (run,) = pq_lab.run(rerun)["runs"]
    assert assert_tables_agree(pq_lab) > rows  # v4 fills hours v3 left out with zeros
    after = {
        k: pq_lab.s3.head_object(Bucket=pq_lab.bucket, Key=k)["ETag"] for k in parquet_keys(pq_lab)
    }
    assert set(after) == set(first_bodies)  # still one object per partition
    changed = {k for k in after if after[k] != first_bodies[k]}
    assert changed == {k for k in after if "dt=2023-06-08" not in k}
    con = pq_lab.table()
    reran = con.execute("SELECT count(*) FROM metrics WHERE run_id = ?", [run["runId"]]).fetchone()
    assert reran == (10 * 24 * 2,)


def test_parquet_off_writes_no_parquet_object(pq_lab: Lab) -> None:
    pq_lab.configure(PARQUET_ENABLED="false")
    pq_lab.run({"brandId": BRAND, "startDate": "2023-06-08", "endDate": "2023-06-08"})
    assert json_partitions(pq_lab) and parquet_keys(pq_lab) == []


def test_a_failed_run_touches_no_parquet_object(pq_lab: Lab, tmp_path: Path) -> None:
    span = {"brandId": BRAND, "startDate": "2023-06-08", "endDate": "2023-06-08"}
    pq_lab.run(span)
    before = {
        k: pq_lab.s3.head_object(Bucket=pq_lab.bucket, Key=k)["ETag"] for k in parquet_keys(pq_lab)
    }
    assert before
    # A v1 selection naming a location the brand does not have fails, commits nothing.
    pq_lab.run({**span, "locations": [555_500_001]})
    statuses = [n["body"]["status"] for n in pq_lab.notifications()]
    assert statuses == ["succeeded", "failed"]
    after = {
        k: pq_lab.s3.head_object(Bucket=pq_lab.bucket, Key=k)["ETag"] for k in parquet_keys(pq_lab)
    }
    assert after == before
