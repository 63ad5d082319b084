"""Latency and injected faults for the emulator's online calls (``generateContent``).

Each call draws, from one seeded random generator, its latency (uniform in ``latency_s`` ±
``latency_jitter_s``) and at most one fault: HTTP 500, HTTP 503, a connection reset, or a slow
answer (``slow_s`` extra seconds), at the configured rates.

A 500, 503 or reset comes after ``fault_latency_s`` (default 0: at once, as an overloaded front end
rejects a call before any model runs it); set it to ``latency_s`` to model calls that fail only
after taking their full time.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass


@dataclass
class FaultConfig:
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    reset_rate: float = 0.0
    slow_rate: float = 0.0
    slow_s: float = 30.0
    fault_latency_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        rates = (self.error_500_rate, self.error_503_rate, self.reset_rate, self.slow_rate)
        if any(not 0 <= r <= 1 for r in rates) or sum(rates) > 1:
            raise ValueError("fault rates must lie in [0, 1] and add up to at most 1")
        if min(self.latency_s, self.latency_jitter_s, self.slow_s, self.fault_latency_s) < 0:
            raise ValueError("latencies must not be negative")


class Faults:
    """Draws what happens to each call."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)

    def draw(self) -> str | None:
        """``"500"``, ``"503"``, ``"reset"``, ``"slow"`` or None."""
        c = self.config
        roll = self._random.random()
        for fault, rate in (("500", c.error_500_rate), ("503", c.error_503_rate), ("reset", c.reset_rate),
                            ("slow", c.slow_rate)):
            if roll < rate:
                return fault
            roll -= rate
        return None

    async def delay(self, fault: str | None, started: float) -> None:
        """Sleep until the call, begun at ``started`` (``time.monotonic()``), has taken its latency:
        the emulator's own work counts toward it, as a real service's does."""
        c = self.config
        latency = max(0.0, c.latency_s + self._random.uniform(-c.latency_jitter_s, c.latency_jitter_s))
        if fault in ("500", "503", "reset"):
            latency = c.fault_latency_s
        latency += c.slow_s if fault == "slow" else 0.0
        await asyncio.sleep(max(0.0, started + latency - time.monotonic()))
