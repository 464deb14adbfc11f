"""bench/parquet.py at smoke size: the figures `make bench` reports for the Parquet table."""

from __future__ import annotations

from bench import parquet


def test_parquet_figures_at_smoke_size() -> None:
    res = parquet.measure(smoke=True)
    assert res["rows"] > 0 and res["json_objects"] == 2
    assert 0 < res["parquet_bytes"] < res["json_gzip_bytes"]
    assert res["parquet_commit_cpu_s"] > 0
    # Two columns of twenty: a small part of the object, a smaller one of the JSON.
    assert 0 < res["column_query_bytes"] < res["parquet_bytes"] / 2
    text = parquet.section(res)
    assert text.startswith("## Parquet table") and f"{res['parquet_bytes']:,} bytes" in text
