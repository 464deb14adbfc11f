"""`wifi-export query SQL`: the exported table, downloaded and read with DuckDB as Athena reads it.

Typed with the Glue table's schema (`exporter.schema`), so a key the exporter
left out of a row (an absent metric, `zone_id` of a location row) reads as NULL:
`WHERE zone_id IS NULL` works as it does in Athena. The SQL may name the table as
Athena does (`wifi_export.wifi_metrics`) or simply `wifi_metrics`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Final

import click
from rich.table import Table
from rich.text import Text

from exporter.schema import COLUMNS, PARTITION_KEYS
from wifi_export_cli import render
from wifi_export_cli.deployment import CliError
from wifi_export_cli.errors import handle_errors
from wifi_export_cli.options import deployment_options
from wifi_export_cli.session import open_session, print_json

_DUCK_TYPES: Final = {
    "bigint": "BIGINT",
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "map<string,bigint>": "MAP(VARCHAR, BIGINT)",
}
DATABASE, TABLE = "wifi_export", "wifi_metrics"


def table_sql(root: Path) -> str:
    """A DuckDB relation over the files under `root`, typed like the Glue table."""
    columns = ", ".join(f"'{name}': '{_DUCK_TYPES[kind]}'" for name, kind in COLUMNS)
    hive = ", ".join(f"'{name}': '{_DUCK_TYPES[kind]}'" for name, kind in PARTITION_KEYS)
    pattern = (root / "**" / "*.json.gz").as_posix()
    return (
        f"read_json('{pattern}', format='newline_delimited', columns={{{columns}}}, "
        f"hive_partitioning=true, hive_types={{{hive}}}, timestampformat='%Y-%m-%d %H:%M:%S')"
    )


def _empty_sql() -> str:
    typed = [*COLUMNS, *PARTITION_KEYS]
    return (
        "SELECT " + ", ".join(f"NULL::{_DUCK_TYPES[t]} AS {n}" for n, t in typed) + " WHERE false"
    )


def open_table(s3: Any, bucket: str, prefix: str, dest: Path) -> Any:
    """Download `prefix` into `dest`; a DuckDB connection with the table as Athena names it."""
    try:
        import duckdb  # noqa: PLC0415 -- only this command needs it
    except ImportError:  # pragma: no cover - installed by `make install`
        raise CliError(
            "`wifi-export query` needs DuckDB", hint="`make install` (or pip install duckdb)"
        ) from None
    found = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith(".json.gz"):
                continue
            target = dest / item["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(target))
            found += 1
    con = duckdb.connect()
    # Built from our own schema and a local path, never from input: no injection.
    source = table_sql(dest) if found else _empty_sql()
    con.execute(f"CREATE SCHEMA {DATABASE}")
    con.execute(f"CREATE VIEW {DATABASE}.{TABLE} AS SELECT * FROM {source}")  # noqa: S608
    con.execute(f"CREATE VIEW {TABLE} AS SELECT * FROM {DATABASE}.{TABLE}")  # noqa: S608
    return con


def _cell(value: Any) -> Text:
    """Plain text (never Rich markup, no escapes or controls): values come from S3."""
    return render.text("NULL", "dim") if value is None else render.text(value)


@click.command()
@click.argument("sql")
@click.option(
    "--brand",
    type=click.IntRange(min=1),
    help="Download only this brand's partitions (faster; the SQL still filters).",
)
@deployment_options
@handle_errors
def query(
    *,
    sql: str,
    brand: int | None,
    stack_name: str | None,
    region: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """Run SQL over the exported table, locally (DuckDB), typed as the Glue table.

    \b
    wifi-export query "SELECT dt, sum(visits) FROM wifi_export.wifi_metrics
        WHERE brand_id = 1234 AND zone_id IS NULL GROUP BY 1 ORDER BY 1" --brand 1234
    """
    session = open_session(stack_name, region, profile, as_json)
    deployment = session.deployment
    prefix = f"{deployment.data_prefix}/" + (f"brand_id={brand}/" if brand else "")
    with tempfile.TemporaryDirectory(prefix="wifi-export-query-") as tmp:
        con = open_table(session.aws.client("s3"), deployment.bucket, prefix, Path(tmp))
        import duckdb  # noqa: PLC0415

        try:
            cursor = con.execute(sql)
        except duckdb.Error as exc:
            raise CliError(
                f"the query failed: {str(exc).splitlines()[0]}",
                hint=f'the table is {DATABASE}.{TABLE} (columns: docs/contracts.md, "Row schema")',
                exit_code=2,
            ) from None
        names = [d[0] for d in cursor.description or ()]
        rows = cursor.fetchall()
    if as_json:
        print_json([dict(zip(names, row, strict=True)) for row in rows])
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in names:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    session.console.print(table)
    session.console.print(f"{len(rows):,} row(s)", style="dim")
