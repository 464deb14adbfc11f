"""The Parquet table in template.yaml: the Glue table with the Parquet SerDe, the
JSON table's columns and projection, its named query twins, and a parameter that
turns all of it off (docs/contracts.md, "The Parquet table")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter import schema
from exporter.config import load_settings
from tests.template.cfn_yaml import load
from tests.template.deployed import Deployment

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"SECRET_ID": "s", "BUCKET_NAME": "b", "TOPIC_ARN": "t", "QUEUE_URL": "q"}


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return load(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def resources(tpl: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = tpl["Resources"]
    return found


def _input(resources: dict[str, Any], name: str) -> dict[str, Any]:
    table_input: dict[str, Any] = resources[name]["Properties"]["TableInput"]
    return table_input


def test_the_parquet_table_reads_parquet_with_the_json_table_s_columns(
    resources: dict[str, Any],
) -> None:
    parquet, json = _input(resources, "MetricsParquetTable"), _input(resources, "MetricsTable")
    assert parquet["Name"] == "wifi_metrics_parquet"
    assert parquet["TableType"] == "EXTERNAL_TABLE"
    sd = parquet["StorageDescriptor"]
    assert sd["SerdeInfo"]["SerializationLibrary"] == (
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    )
    assert sd["InputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    assert sd["OutputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    assert sd["Columns"] == json["StorageDescriptor"]["Columns"]
    assert tuple((c["Name"], c["Type"]) for c in sd["Columns"]) == schema.COLUMNS
    assert parquet["PartitionKeys"] == json["PartitionKeys"]
    assert sd["Location"]["Fn::Sub"][0] == "s3://${Bucket}/${ParquetPrefix}/"
    assert parquet["Parameters"]["classification"] == "parquet"


def test_the_parquet_table_projects_partitions_as_the_json_table_does(
    resources: dict[str, Any],
) -> None:
    parquet = _input(resources, "MetricsParquetTable")["Parameters"]
    json = _input(resources, "MetricsTable")["Parameters"]
    projection = {k: v for k, v in json.items() if k.startswith("projection.")}
    assert {k: v for k, v in parquet.items() if k.startswith("projection.")} == projection
    json_location = json["storage.location.template"]["Fn::Sub"]
    parquet_location = parquet["storage.location.template"]["Fn::Sub"]
    # The same partition path, under the Parquet prefix (exporter/parquet_table.twin_key).
    assert parquet_location[0] == json_location[0].replace("${DataPrefix}", "${ParquetPrefix}")
    assert parquet_location[1] == json_location[1]


def test_on_by_default_with_the_code_s_default_prefix(tpl: dict[str, Any]) -> None:
    params = tpl["Parameters"]
    assert params["EnableParquet"]["Default"] == "true"
    assert params["EnableParquet"]["AllowedValues"] == ["true", "false"]
    assert params["ParquetPrefix"]["Default"] == load_settings(REQUIRED).parquet_prefix
    function = tpl["Resources"]["ExporterFunction"]["Properties"]
    env = function["Environment"]["Variables"]
    assert env["PARQUET_ENABLED"] == {"Ref": "EnableParquet"}
    assert env["PARQUET_PREFIX"] == {"Ref": "ParquetPrefix"}


def test_every_named_query_has_a_parquet_twin(resources: dict[str, Any]) -> None:
    queries = {name: r for name, r in resources.items() if r["Type"] == "AWS::Athena::NamedQuery"}
    originals = {name for name in queries if not name.startswith("Parquet")}
    assert originals and set(queries) == originals | {"Parquet" + name for name in originals}
    for name in originals:
        twin, original = queries["Parquet" + name], queries[name]
        assert twin["Condition"] == "ParquetOn"
        sql = original["Properties"]["QueryString"]
        assert "FROM wifi_metrics\n" in sql
        twin_sql = sql.replace("FROM wifi_metrics\n", "FROM wifi_metrics_parquet\n")
        assert twin["Properties"]["QueryString"] == twin_sql
        assert twin["Properties"]["Name"] == original["Properties"]["Name"] + " (Parquet)"


def test_turned_off_there_is_no_table_no_twin_and_no_grant() -> None:
    on, off = Deployment(), Deployment({"EnableParquet": "false"})
    assert "MetricsParquetTable" in on.resources("AWS::Glue::Table")
    assert set(off.resources("AWS::Glue::Table")) == {"MetricsTable"}
    assert len(on.resources("AWS::Athena::NamedQuery")) == 2 * len(
        off.resources("AWS::Athena::NamedQuery")
    )
    sids = {s.get("Sid") for s in off.statements_of_role("ExporterFunctionRole")}
    assert "WriteParquetTable" not in sids
    assert "WriteParquetTable" in {
        s.get("Sid") for s in on.statements_of_role("ExporterFunctionRole")
    }
    (function,) = off.resources("AWS::Lambda::Function").values()
    assert function["Properties"]["Environment"]["Variables"]["PARQUET_ENABLED"] == "false"
