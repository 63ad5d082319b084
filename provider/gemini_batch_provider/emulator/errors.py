"""The emulator's error for a malformed request."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """The request is malformed; the message says which field (answered as 400 INVALID_ARGUMENT)."""
