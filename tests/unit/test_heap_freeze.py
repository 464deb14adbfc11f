"""The handler freezes the heap after an invocation that loaded modules, and only then
(app._freeze_new_modules; docs/performance.md, "CPU at the floor")."""

from __future__ import annotations

import gc
import sys
import types
import weakref
from collections.abc import Iterator

import pytest

import app


@pytest.fixture
def thawed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    gc.unfreeze()
    monkeypatch.setattr(app, "_frozen_at", [0])
    yield
    gc.unfreeze()  # the rest of the test session keeps a collectable heap


@pytest.mark.usefixtures("thawed")
def test_only_an_invocation_that_loaded_modules_freezes(monkeypatch: pytest.MonkeyPatch) -> None:
    app._freeze_new_modules()  # the first invocation: everything it imported
    assert gc.get_freeze_count() > 0
    gc.unfreeze()

    app._freeze_new_modules()  # a warm invocation that imported nothing
    assert gc.get_freeze_count() == 0

    monkeypatch.setitem(sys.modules, "wifi_export_late_import", types.ModuleType("late"))
    app._freeze_new_modules()  # one that did (a commit's first Parquet rebuild)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("thawed")
def test_frozen_objects_are_still_freed_by_reference_counting() -> None:
    class Probe:
        pass

    freed: list[bool] = []
    probe = Probe()
    ref = weakref.ref(probe, lambda _: freed.append(True))
    app._freeze_new_modules()
    del probe
    assert ref() is None and freed == [True]
