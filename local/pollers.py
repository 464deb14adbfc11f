"""Lambda's SQS pollers at the mapping's maximum concurrency, as real processes.

    python -m local.pollers worker --report OUT.json --ready FILE --stop FILE
    python -m local.pollers invoke --report OUT.json --event JSON

`worker` is one warm container draining the moto-server queue; `invoke` one cold
direct invocation; both write a report of invocations and AWS calls. `Pollers`
starts and stops a set of workers (bench/scale.py). Why: docs/decisions.md,
"Pollers as processes".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPORTER_DIR = ROOT / "functions" / "exporter"


@dataclass
class Recorder:
    """What one process's function did: its invocations and AWS calls."""

    invocations: list[dict[str, Any]] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    poller: Counter[str] = field(default_factory=Counter)

    def hook(self) -> None:
        """Count the exporter's AWS calls (its own boto3 session), as bench/child.py does."""
        from exporter import aws  # noqa: PLC0415

        def count(event_name: str = "", **_: Any) -> None:
            self.calls[event_name.split(".", 1)[1]] += 1  # before-call.<service>.<Op>

        aws._session().events.register("before-call", count)

    def invoke(self, handler: Any, event: dict[str, Any], budget_ms: int) -> tuple[Any, bool]:
        from local.harness import FakeContext, Killed  # noqa: PLC0415

        started, cpu = time.time(), time.process_time()
        ok, response = True, None
        try:
            response = handler(event, FakeContext(budget_ms))
        except (Exception, Killed) as exc:
            ok = False
            response = {"crashed": type(exc).__name__}
        self.invocations.append(
            {
                "start": started,
                "wall_s": time.time() - started,
                "cpu_s": time.process_time() - cpu,
                "ok": ok,
                "failed_records": len((response or {}).get("batchItemFailures") or []) if ok else 0,
            }
        )
        return response, ok

    def report(self, **extra: Any) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "invocations": self.invocations,
            "calls": dict(self.calls),
            "poller": dict(self.poller),
            "cpu_s": time.process_time(),
            **extra,
        }


def _write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, default=str))
    tmp.replace(path)


def worker(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(EXPORTER_DIR))
    import boto3  # noqa: PLC0415

    import app  # noqa: PLC0415 -- the handler as Lambda imports it
    from local.harness import sqs_event  # noqa: PLC0415

    recorder = Recorder()
    recorder.hook()
    commits = _time_commits()
    # The poller's own client, not the function's (its calls are Lambda's, counted apart).
    sqs: Any = boto3.session.Session().client("sqs")
    queue_url = os.environ["QUEUE_URL"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    stop = Path(args.stop)
    Path(args.ready).write_text(str(os.getpid()))
    while not stop.exists():
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            VisibilityTimeout=args.visibility_timeout,
        ).get("Messages", [])
        recorder.poller["ReceiveMessage" if got else "EmptyReceive"] += 1
        for message in got:
            response, ok = recorder.invoke(app.handler, sqs_event([message], arn), args.budget_ms)
            if ok and not (response or {}).get("batchItemFailures"):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                recorder.poller["DeleteMessage"] += 1
            else:
                sqs.change_message_visibility(
                    QueueUrl=queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=args.redelivery_delay,
                )
                recorder.poller["Redelivered"] += 1
    _write(Path(args.report), recorder.report(commits=commits))
    return 0


def _time_commits() -> list[float]:
    """Seconds of every commit this process makes (`bench.scale_year`), filled as they end.

    `SCALE_SEQUENTIAL=1` (set by the bench only) runs the store's groups one call
    after another: the figure that side by side is measured against."""
    from exporter.run import commit, parallel  # noqa: PLC0415

    parallel.sequential(os.environ.get("SCALE_SEQUENTIAL") == "1")
    seconds: list[float] = []
    commit_run = commit.commit_run

    def timed(*a: Any, **k: Any) -> Any:
        began = time.perf_counter()
        try:
            return commit_run(*a, **k)
        finally:
            seconds.append(time.perf_counter() - began)

    commit.commit_run = timed
    return seconds


def invoke(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(EXPORTER_DIR))
    import app  # noqa: PLC0415
    from exporter.run import start  # noqa: PLC0415

    recorder = Recorder()
    recorder.hook()
    commits = _time_commits()
    # When every brand's windows were out (the inline window starts only then).
    marks: dict[str, float] = {}
    inline = start._run_first_window_inline

    def timed_inline(*a: Any, **k: Any) -> None:
        marks["fanned_out"] = time.time()
        inline(*a, **k)

    start._run_first_window_inline = timed_inline
    response, _ = recorder.invoke(app.handler, json.loads(args.event), args.budget_ms)
    marks.setdefault(
        "fanned_out", recorder.invocations[-1]["start"] + recorder.invocations[-1]["wall_s"]
    )
    _write(Path(args.report), recorder.report(response=response, commits=commits, **marks))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.pollers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="one poller: a Lambda container")
    w.add_argument("--report", required=True)
    w.add_argument("--ready", required=True)
    w.add_argument("--stop", required=True)
    w.add_argument("--budget-ms", type=int, default=900_000)
    w.add_argument("--visibility-timeout", type=int, default=300)
    w.add_argument("--redelivery-delay", type=int, default=1)
    i = sub.add_parser("invoke", help="one direct invocation")
    i.add_argument("--report", required=True)
    i.add_argument("--event", required=True)
    i.add_argument("--budget-ms", type=int, default=900_000)
    args = parser.parse_args(argv)
    return worker(args) if args.command == "worker" else invoke(args)


# -- from another process ---------------------------------------------------------------


@dataclass
class Finished:
    """A process of this module, ended: its report and its rusage (os.wait4)."""

    report: dict[str, Any]
    returncode: int
    cpu_s: float
    maxrss_mb: float


class Pollers:
    """N worker processes on one queue, started together, stopped together."""

    def __init__(
        self,
        n: int,
        env: Mapping[str, str],
        work: Path,
        *,
        budget_ms: int = 900_000,
        redelivery_delay_s: int = 1,
        visibility_timeout_s: int = 300,
    ) -> None:
        self.work = work
        self.stop_file = work / "stop"
        self.stop_file.unlink(missing_ok=True)
        self.procs: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
        for k in range(n):
            report, ready = work / f"worker-{k}.json", work / f"worker-{k}.ready"
            ready.unlink(missing_ok=True)
            log, err = (work / f"worker-{k}.log").open("ab"), (work / f"worker-{k}.err").open("ab")
            argv = [
                sys.executable,
                "-m",
                "local.pollers",
                "worker",
                "--report",
                str(report),
                "--ready",
                str(ready),
                "--stop",
                str(self.stop_file),
                "--budget-ms",
                str(budget_ms),
                "--redelivery-delay",
                str(redelivery_delay_s),
                "--visibility-timeout",
                str(visibility_timeout_s),
            ]
            proc = subprocess.Popen(
                argv, env=dict(env), cwd=ROOT, stdout=log, stderr=err, start_new_session=True
            )
            log.close()
            err.close()
            self.procs.append((proc, report, ready))

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        for proc, _, ready in self.procs:
            while not ready.exists():
                if exited(proc):
                    raise RuntimeError(f"poller {proc.pid} exited early; see {self.work}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"pollers not ready after {timeout_s} s")
                time.sleep(0.05)

    def stop(self, timeout_s: float = 600.0) -> list[Finished]:
        """Ask every worker to stop after its current invocation; reap them."""
        self.stop_file.write_text("stop")
        return [_reap(proc, report, timeout_s) for proc, report, _ in self.procs]

    def kill(self) -> None:
        for proc, _, _ in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run_invocation(
    event: dict[str, Any], env: Mapping[str, str], work: Path, name: str = "start"
) -> subprocess.Popen[bytes]:
    """Start one direct invocation in a fresh process; `finish_invocation` reaps it."""
    report = work / f"{name}.json"
    log, err = (work / f"{name}.log").open("ab"), (work / f"{name}.err").open("ab")
    argv = [
        sys.executable,
        "-m",
        "local.pollers",
        "invoke",
        "--report",
        str(report),
        "--event",
        json.dumps(event),
    ]
    proc = subprocess.Popen(
        argv, env=dict(env), cwd=ROOT, stdout=log, stderr=err, start_new_session=True
    )
    log.close()
    err.close()
    return proc


def finish_invocation(
    proc: subprocess.Popen[bytes], work: Path, name: str = "start", timeout_s: float = 900.0
) -> Finished:
    return _reap(proc, work / f"{name}.json", timeout_s)


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has ended, without reaping it (its rusage is read by `_reap`)."""
    if proc.returncode is not None:
        return True
    found = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return found is not None and found.si_pid == proc.pid


def _reap(proc: subprocess.Popen[bytes], report: Path, timeout_s: float) -> Finished:
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.05)
    doc = json.loads(report.read_text()) if report.exists() else {}
    return Finished(doc, proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0)


if __name__ == "__main__":
    raise SystemExit(main())
