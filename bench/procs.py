"""Subprocesses of the benchmark: servers that must die with it, and measured children."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Measured:
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_mb: float  # ru_maxrss is KiB on Linux; MB here means MiB
    spawned_at: float  # time.time() just before the fork
    # Minor page faults (memory touched for the first time) and context switches
    # (voluntary: it waited, on I/O or a lock; involuntary: it was preempted).
    minor_faults: int = 0
    context_switches: int = 0

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


class Processes:
    """Every process the benchmark starts, each in its own session (process group),
    so `close()` can end it and anything it spawned, and nothing else."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._live: dict[int, subprocess.Popen[bytes]] = {}
        self._files: list[IO[bytes]] = []
        self._spawner: subprocess.Popen[bytes] | None = None
        self._children: set[int] = set()  # process groups of running measured children

    def _popen(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        name: str,
        pipes: bool = False,
    ) -> Any:
        out = (self.logs / f"{name}.out").open("ab")
        self._files.append(out)
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else out,
            stderr=out,
            start_new_session=True,
        )
        self._live[proc.pid] = proc
        return proc

    def pin_servers(self, cpus: set[int] | None) -> None:
        """Keep the servers (and their threads) on `cpus`; None: every core again."""
        every = set(range(os.cpu_count() or 1))
        for proc in self._live.values():
            if proc is self._spawner or proc.poll() is not None:
                continue
            for task in Path(f"/proc/{proc.pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task.name), cpus or every)

    def server(
        self,
        argv_for_port: Any,
        *,
        env: Mapping[str, str],
        cwd: Path,
        name: str,
        ready_path: str,
        timeout_s: float = 60.0,
    ) -> tuple[subprocess.Popen[bytes], str]:
        """Start `argv_for_port(port)` on a free port and wait until it answers HTTP."""
        for _ in range(3):  # a free port can be taken between the probe and the bind
            port = free_port()
            proc = self._popen(argv_for_port(port), env, cwd, name)
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and proc.poll() is None:
                if _answers(url + ready_path):
                    return proc, url
                time.sleep(0.1)
            self.stop(proc)
        raise RuntimeError(f"{name} did not come up; see {self.logs / (name + '.out')}")

    def measure(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        name: str,
        cpus: Sequence[int] | None = None,
    ) -> Measured:
        """Run a child to completion: wall clock around it, its own rusage from wait4.

        The child is started by bench/spawn.py, a process with a small RSS: a child
        inherits the RSS of the process it is forked from as its ru_maxrss floor.
        `cpus` pins it to those cores (sched_setaffinity before exec).
        """
        if self._spawner is None:
            self._spawner = self._popen(
                [sys.executable, "-S", str(Path(__file__).with_name("spawn.py"))],
                os.environ,
                cwd,
                "spawner",
                pipes=True,
            )
        spawner = self._spawner
        assert spawner.stdin is not None and spawner.stdout is not None
        request = {
            "argv": list(argv),
            "env": dict(env),
            "cwd": str(cwd),
            "log": str(self.logs / f"{name}.out"),
            "cpus": list(cpus) if cpus else None,
        }
        spawner.stdin.write(json.dumps(request).encode() + b"\n")
        spawner.stdin.flush()
        pid = json.loads(spawner.stdout.readline() or b"{}").get("pid")
        if pid is None:
            raise RuntimeError(f"the spawner died; see {self.logs / 'spawner.out'}")
        self._children.add(pid)
        answer = json.loads(spawner.stdout.readline() or b"{}")
        self._children.discard(pid)
        if "status" not in answer:
            raise RuntimeError(f"the spawner died; see {self.logs / 'spawner.out'}")
        return Measured(
            answer["status"],
            answer["wall_s"],
            answer["user_s"],
            answer["sys_s"],
            answer["maxrss_kib"] / 1024.0,
            answer["spawned_at"],
            answer["minflt"],
            answer["nvcsw"] + answer["nivcsw"],
        )

    def stop(self, proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
        self._live.pop(proc.pid, None)
        if proc.returncode is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)  # its own group: start_new_session=True
            try:
                proc.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        for pid in list(self._children):  # a measured child interrupted mid-run
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)
                time.sleep(0.2)
        self._children.clear()
        if self._spawner is not None and self._spawner.stdin is not None:
            with contextlib.suppress(OSError):
                self._spawner.stdin.close()  # end of input: the spawner exits
        for proc in list(self._live.values()):
            self.stop(proc)
        for out in self._files:
            out.close()
        self._files.clear()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 -- our own loopback server
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it is serving
    except OSError:
        return False
