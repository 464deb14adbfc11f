"""The gzip writer: valid gzip members, in order, with or without the compressor thread."""

from __future__ import annotations

import gzip
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.gzip_writer import GzipWriter


def lines(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    pads = ["x" * rng.randrange(200) for _ in range(n)]
    return [
        f'{{"location_id":{i},"visits":{rng.randrange(10**6)},"pad":"{pad}"}}\n'.encode()
        for i, pad in enumerate(pads)
    ]


@pytest.mark.parametrize("threaded", [False, True])
def test_many_batches_come_out_whole_and_in_order(threaded: bool) -> None:
    chunks = lines(40_000)  # several MiB: many compressor batches, spooled to disk
    with ThreadPoolExecutor(1) as pool:
        writer = GzipWriter(pool if threaded else None)
        for start in range(0, len(chunks), 500):
            writer.write(b"".join(chunks[start : start + 500]), 500)
        body, size = writer.finish()
    with body:
        data = body.read()
    assert len(data) == size
    assert gzip.decompress(data) == b"".join(chunks)
    assert writer.rows == 40_000
    assert size < len(b"".join(chunks)) / 2


def test_an_empty_writer_is_an_empty_gzip_file() -> None:
    body, size = GzipWriter().finish()
    with body:
        assert gzip.decompress(body.read()) == b""
    assert size > 0


@given(st.lists(st.binary(max_size=3000), max_size=30))
@settings(max_examples=50, deadline=None)
def test_any_sequence_of_writes_round_trips(parts: list[bytes]) -> None:
    with ThreadPoolExecutor(1) as pool:
        writer = GzipWriter(pool)
        for part in parts:
            writer.write(part, 1)
        body, _ = writer.finish()
    with body:
        assert gzip.decompress(body.read()) == b"".join(parts)
    assert writer.rows == len(parts)
