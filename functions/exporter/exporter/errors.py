"""Exception types, classified by what the run should do about them (DESIGN §6)."""

from __future__ import annotations


class ExportError(Exception):
    """Base of every error the exporter raises on purpose."""


class ConfigError(ExportError):
    """A missing or malformed environment variable: fails the cold start."""


class PermanentError(ExportError):
    """Retrying cannot help: the run is marked failed and notified once."""


class InvalidEvent(PermanentError):
    """An event we cannot act on; nothing is written."""


class ApiRejected(PermanentError):
    """The API refused the request (400, or 401 for the brand after a fresh token)."""


class MalformedResponse(PermanentError):
    """The API answered with something the documentation does not allow."""


class TransientError(ExportError):
    """Worth retrying later (throttling, 5xx, resets, timeouts, truncated bodies)."""
