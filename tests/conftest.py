"""Shared by every test: the fake API fixtures and one hypothesis profile.

The profile has no deadline and no "too slow" health check: on a loaded machine (CI
on shared cores, `stress --cpu 2`) an example that takes 300 ms instead of 20 ms is
not a bug, and a test that fails for it is flaky. Tests set their own `max_examples`;
everything else comes from here.
"""

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.fake_api_fixture"]

settings.register_profile(
    "wifi-export",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("wifi-export")
