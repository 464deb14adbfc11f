"""Local stand-ins started as real processes on loopback: the moto server and the fake API.

Used by the demo and the benchmark; every process is stopped on exit.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 -- loopback only
                return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error status: it is serving
                return
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered at {url} within {timeout_s} s")


@contextlib.contextmanager
def process(argv: Sequence[str], probe_url: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        list(argv), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_http(probe_url, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server (all AWS services) on a free loopback port; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with process(argv, url + "/moto-api/"):
        yield url


@contextlib.contextmanager
def fake_api(*args: str) -> Iterator[str]:
    """The fake analytiks API (`python -m local.fake_analytiks ARGS`); yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "local.fake_analytiks", "--port", str(port), *args]
    with process(argv, url + "/health"):
        yield url
