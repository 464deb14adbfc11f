from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.planning import days_of, last_complete_days, request_range, split_windows

dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


@given(first=dates, length=st.integers(0, 800), window_days=st.integers(1, 5))
def test_windows_cover_the_range_exactly_once(first: date, length: int, window_days: int) -> None:
    last = first + timedelta(days=length)
    windows = split_windows(first, last, window_days)
    covered = [d for w in windows for d in days_of(w.first_day, w.last_day)]
    assert covered == days_of(first, last)
    assert [w.index for w in windows] == list(range(len(windows)))
    assert all(1 <= w.days <= window_days for w in windows)
    assert len(windows) == -(-(length + 1) // window_days)


@pytest.mark.parametrize("window_days", [0, 6])
def test_window_days_outside_the_api_limit_are_refused(window_days: int) -> None:
    with pytest.raises(ValueError, match="window_days"):
        split_windows(date(2023, 1, 1), date(2023, 1, 9), window_days)


def test_last_day_before_first_is_refused() -> None:
    with pytest.raises(ValueError):
        split_windows(date(2023, 1, 2), date(2023, 1, 1), 5)


@given(
    now=st.datetimes(
        min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
    ),
    lookback=st.integers(1, 40),
)
def test_scheduled_days_are_complete_everywhere(now: datetime, lookback: int) -> None:
    first, last = last_complete_days(now, lookback, "utc")
    assert (last - first).days + 1 == lookback
    assert datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC) <= now
    assert last == now.date() - timedelta(days=1)  # the most recent complete UTC day
    local_first, local_last = last_complete_days(now, lookback, "local")
    # A local day ends last at UTC-12: it is complete only 12 hours after UTC midnight.
    end_everywhere = datetime.combine(local_last + timedelta(days=1), datetime.min.time(), UTC)
    assert end_everywhere + timedelta(hours=12) <= now
    assert end_everywhere + timedelta(hours=36) > now
    assert (local_last - local_first).days + 1 == lookback


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        last_complete_days(datetime(2023, 1, 1), 1, "utc")


def test_request_range_is_whole_days_in_the_basis() -> None:
    (window,) = split_windows(date(2023, 6, 8), date(2023, 6, 12), 5)
    assert request_range(window, "utc") == ("2023-06-08T00:00:00.000Z", "2023-06-12T23:59:59.999Z")
    assert request_range(window, "local") == ("2023-06-08T00:00:00.000", "2023-06-12T23:59:59.999")
