"""Per-key, per-model request and token quotas over a sliding minute, as the Gemini API enforces
RPM and TPM (https://ai.google.dev/gemini-api/docs/rate-limits)."""

from __future__ import annotations

import time
from collections import deque


class Quota:
    """Admits a call or says how many seconds to wait. ``rpm``/``tpm`` of None mean no limit.

    Calls are counted over a sliding ``window_s`` that admits ``rpm * window_s / 60`` requests
    (likewise tokens): a minute by default; a shorter window enforces the same rate more evenly.
    """

    def __init__(self, rpm: int | None, tpm: int | None, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self.rpm = None if rpm is None else max(1, int(rpm * window_s / 60))
        self.tpm = None if tpm is None else max(1, int(tpm * window_s / 60))
        self._calls: dict[tuple[str, str], deque[tuple[float, int]]] = {}

    def admit(self, key: str, model: str, tokens: int) -> float:
        """0.0 and the call is counted, or the seconds until it would fit (nothing counted)."""
        now = time.monotonic()
        calls = self._calls.setdefault((key, model), deque())
        while calls and calls[0][0] <= now - self.window_s:
            calls.popleft()
        wait = 0.0
        if self.rpm is not None and len(calls) >= self.rpm:
            wait = calls[len(calls) - self.rpm][0] + self.window_s - now
        if self.tpm is not None:
            used = sum(t for _, t in calls)
            freed = 0
            for moment, spent in calls:
                if used - freed + tokens <= self.tpm:
                    break
                freed += spent
                wait = max(wait, moment + self.window_s - now)
        if wait > 0:
            return wait
        calls.append((now, tokens))
        return 0.0
