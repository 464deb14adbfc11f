"""The deployable artifact: `sam build` output, imported and run with nothing else.

`make -s build` is run from here, so a fresh clone needs no manual step: its
first run creates .venv-sam (`make sam-venv`), later runs reuse it and sam's
build cache. The built function and layer are then imported by a clean
python3.12 (`-I -S`: no virtualenv, no site-packages; tests/package/clean_runner.py)
and the handler exports a two-day range against a moto server and the local
fake analytiks API, both in subprocesses, the way Lambda would run it.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from local.contract import LINE_COLUMNS, METRIC_COLUMN, parse_data_key
from local.fake_analytiks import expected_rows, reference_number
from local.resources import clients, provision, read_notifications
from tests.template.cfn_yaml import load

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
FUNCTION_DIR = BUILD / "ExporterFunction"
LAYER_DIR = BUILD / "DependenciesLayer" / "python"
RUNNER = Path(__file__).with_name("clean_runner.py")
VENV_PY = ROOT / ".venv" / "bin" / "python"
REGION = "us-east-1"
BRAND = 1234


def make(target: str, timeout: int = 1800) -> str:
    """`make -s TARGET` from the repository root; its output, or a failed assertion."""
    proc = subprocess.run(
        ["make", "-s", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def built() -> Path:
    make("build")
    assert (FUNCTION_DIR / "app.py").is_file()
    assert (FUNCTION_DIR / "exporter" / "schema.py").is_file()
    assert LAYER_DIR.is_dir()
    return BUILD


@pytest.fixture(scope="module")
def lambda_python() -> str:
    """The interpreter sam built with: the Lambda runtime's python3.12."""
    path = subprocess.run(
        [str(ROOT / "scripts" / "find-python")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    version = subprocess.run(
        [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "3.12", f"{path} is {version}; the Lambda runtime is python3.12"
    return path


def run_clean(
    python: str, mode: str, tmp_path: Path, env: dict[str, str] | None = None, timeout: int = 120
) -> dict[str, Any]:
    output = tmp_path / f"{mode}.json"
    proc = subprocess.run(
        [python, "-I", "-S", str(RUNNER), mode, str(output), str(FUNCTION_DIR), str(LAYER_DIR)],
        cwd=tmp_path,
        # A made-up minimal environment: nothing of the developer's AWS setup leaks in.
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(tmp_path), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    result: dict[str, Any] = json.loads(output.read_text())
    return result


def test_layer_dependencies_import_in_a_clean_interpreter(
    built: Path, lambda_python: str, tmp_path: Path
) -> None:
    result = run_clean(lambda_python, "imports", tmp_path)
    assert result["leaked"] == [], "dev-only packages importable: the interpreter is not clean"
    for name, origin in result["origins"].items():
        assert origin.startswith(str(LAYER_DIR)), f"{name} imported from {origin}, not the layer"
    assert not [p for p in result["sys_path"] if "site-packages" in p]


def test_the_layer_is_exactly_the_locked_set(built: Path) -> None:
    """`sam build` installed layers/requirements.txt (hash-checked), nothing more or less."""
    lock = {
        canonicalize_name(m.group(1)): m.group(2)
        for m in re.finditer(
            r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)",
            (ROOT / "layers" / "requirements.txt").read_text(),
            re.MULTILINE,
        )
    }
    assert lock
    installed = {}
    for info in LAYER_DIR.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[canonicalize_name(name)] = version
    assert installed == lock


def test_handler_module_imports_from_the_build(
    built: Path, lambda_python: str, tmp_path: Path
) -> None:
    env = {"POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": REGION}
    result = run_clean(lambda_python, "app", tmp_path, env)
    assert result["app"] == str(FUNCTION_DIR / "app.py")
    assert result["handler"] is True


# --- end to end: moto server + fake analytiks API -----------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def moto_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [str(VENV_PY), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):  # noqa: S310
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start: {(tmp_path / 'moto.log').read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        _stop(proc)
        log.close()


@pytest.fixture
def fake_api_url(tmp_path: Path) -> Iterator[str]:
    out = tmp_path / "fake_api.log"
    log = open(out, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [
            str(VENV_PY),
            "-m",
            "local.fake_analytiks",
            "--port",
            str(_free_port()),
            "--brands",
            f"{BRAND}:3",
            "--client",
            "demo-client:demo-secret",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            first = out.read_text().split("\n", 1)
            if len(first) == 2 and first[0].startswith("http"):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"fake analytiks API did not start: {out.read_text()}")
            time.sleep(0.1)
        yield first[0].strip().rstrip("/")
    finally:
        _stop(proc)
        log.close()


def test_built_handler_exports_an_on_demand_range(
    built: Path,
    lambda_python: str,
    tmp_path: Path,
    moto_url: str,
    fake_api_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws = {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    make = clients(REGION, moto_url)
    deployment = provision(
        make, name="wifi-export-package", client_id="demo-client", client_secret="demo-secret"
    )
    s3, sqs = make("s3"), make("sqs")
    bucket, queue_url = deployment.bucket, deployment.queue_url
    env = {
        **aws,
        **deployment.environment(fake_api_url),
        "BRAND_IDS": "",
        "LOOKBACK_DAYS": "1",
        "TIME_BASIS": "utc",
        # One-day windows: the two-day range fans out into two SQS windows.
        "WINDOW_DAYS": "1",
        "API_AUDIENCE": "https://gql.analytiks.ai",
        "TIME_SAFETY_MARGIN_MS": "60000",
        "MAX_HOPS": "200",
        "MAX_RECEIVE_COUNT": "5",
        "MAX_BRANDS_PER_EVENT": "100",
        "MAX_WINDOWS_PER_EVENT": "10000",
        "API_MAX_RPS": "",  # the template's default: no API budget
        "MAX_CONCURRENCY": "5",
        "ENABLE_TRACING": "false",
        # On, as deployed by default: the commit imports arro3 from the built layer.
        "PARQUET_ENABLED": "true",
        "PARQUET_PREFIX": "wifi/metrics_parquet",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "WifiExport",
        "POWERTOOLS_SERVICE_NAME": "wifi-export",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "LOG_LEVEL": "WARNING",
        "RUNNER_EVENT": json.dumps(
            {"brandId": BRAND, "startDate": "2023-06-08", "endDate": "2023-06-09"}
        ),
    }
    # The function runs with what the template gives it: no more, no less.
    template_env = load(ROOT / "template.yaml")["Resources"]["ExporterFunction"]["Properties"][
        "Environment"
    ]["Variables"]
    assert set(template_env) <= set(env)

    result = run_clean(lambda_python, "export", tmp_path, env, timeout=600)

    assert result["app"] == str(FUNCTION_DIR / "app.py")
    assert result["boto3"].startswith(str(LAYER_DIR))
    response = result["response"]
    runs = response.get("runs") or [response]
    assert runs[0].get("runId"), response
    assert result["sqs_invocations"] >= 2, result  # one per window at least
    assert result["failed_records"] == 0, result

    # The table, row by row, against what the fake API serves for those days
    # (local.fake_analytiks) in the columns of the row schema (local.contract).
    run_id = runs[0]["runId"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    table = [k for k in keys if k.startswith("wifi/metrics/")]
    assert {parse_data_key(k).dt for k in table} == {"2023-06-08", "2023-06-09"}
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for key in table:
        part = parse_data_key(key)
        assert (part.prefix, part.brand_id, part.run_id) == ("wifi/metrics", BRAND, run_id)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for line in gzip.decompress(body).splitlines():
            row = json.loads(line)
            assert set(row) <= {name for name, _ in LINE_COLUMNS}, sorted(row)
            assert row["ts"][:10] == part.dt and row["run_id"] == run_id
            assert (row["location_id"], row["ts"]) not in rows, "a row twice"
            rows[row["location_id"], row["ts"]] = row
    truth = {
        (r.location_id, r.ts): r.values
        for r in expected_rows(BRAND, 3, "2023-06-08T00:00:00.000Z", "2023-06-09T23:59:59.999Z")
    }
    assert set(rows) == set(truth)
    for key, values in truth.items():
        row = rows[key]
        assert {c: row.get(c) for c in METRIC_COLUMN.values()} == {
            c: values.get(api) for api, c in METRIC_COLUMN.items()
        }, key
        assert row.get("extra") is None
        assert (row["time_basis"], row["reference_number"]) == ("utc", reference_number(key[0]))
    # The Parquet twin, written with the built layer's arro3: one object a day.
    parquet = sorted(k for k in keys if k.startswith("wifi/metrics_parquet/"))
    assert [k.split("/dt=")[1] for k in parquet] == [
        "2023-06-08/part.parquet",
        "2023-06-09/part.parquet",
    ], parquet
    # One notification, telling what the table holds.
    (note,) = read_notifications(sqs, deployment.inbox_url)
    assert note["attributes"] == {"status": "succeeded", "brandId": str(BRAND)}
    assert note["body"]["runId"] == run_id
    assert note["body"]["totals"]["rows"] == len(rows)
    assert note["body"]["totals"]["objects"] == len(table)
    # Nothing else left in flight.
    left = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert left == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }


def test_runner_is_not_on_the_dev_path() -> None:
    # clean_runner.py may import only the stdlib at module level: it runs in -I -S.
    source = RUNNER.read_text()
    header = source.split("def ", 1)[0]
    assert "import boto3" not in header
    assert "import app" not in header


def test_sam_validate_lint(built: Path) -> None:
    """`sam validate --lint`: SAM's own transform and cfn-lint on the expanded template."""
    assert "is a valid SAM Template" in make("validate", timeout=600)
