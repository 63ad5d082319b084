"""Service tiers of the emulator's ``generateContent``: Standard, Flex and Priority.

As the reference reads the live API (Gemini's "flex-inference" and "optimization" pages, December
2026): a request names its tier in ``serviceTier`` (the SDK's ``GenerateContentConfig.service_tier``:
``flex``, ``standard``, ``priority``; ``unspecified`` or none is Standard). Flex answers at the batch
price, synchronously, within minutes, and sheds calls under load with HTTP 503 UNAVAILABLE;
Priority answers in seconds and is never shed, but falls back to Standard when capacity is short.
The answer tells which tier served it, in ``usageMetadata.serviceTier`` and in the
``x-gemini-service-tier`` header.

Flex's minutes are ``flex_latency_s`` here, scaled down for tests; ``flex_shed_rate`` of Flex calls
are shed, and ``priority_fallback_rate`` of Priority calls served at Standard, drawn from their own
seeded generator so that these draws do not move the fault draws.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from .errors import InvalidRequest

TIERS = {"": "STANDARD", "unspecified": "STANDARD", "standard": "STANDARD", "flex": "FLEX", "priority": "PRIORITY"}


@dataclass
class TierConfig:
    flex_latency_s: float = 60.0
    flex_shed_rate: float = 0.0
    priority_fallback_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.flex_shed_rate <= 1 and 0 <= self.priority_fallback_rate <= 1) or self.flex_latency_s < 0:
            raise ValueError("flex_shed_rate and priority_fallback_rate must lie in [0, 1], and flex_latency_s must "
                             "not be negative")


class Tiers:
    """Which tier serves each call, and what Flex does to it."""

    def __init__(self, config: TierConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)

    @staticmethod
    def requested(body: dict) -> str:
        """The tier a request body asks for, as the answer names it (``STANDARD``, ``FLEX``,
        ``PRIORITY``). :raises InvalidRequest: for a value that is no tier (answered 400)."""
        asked = body.get("serviceTier", body.get("service_tier")) or ""
        tier = TIERS.get(str(asked).lower().removeprefix("service_tier_")) if isinstance(asked, str) else None
        if tier is None:
            raise InvalidRequest(f"Invalid value at 'service_tier' (type.googleapis.com/google.ai.generativelanguage."
                                 f"v1beta.ServiceTier), {json.dumps(asked)}")
        return tier

    def serving(self, asked: str) -> str:
        """The tier that serves a call that asked for ``asked``: Standard for a Priority call
        drawn to fall back, else the one asked for."""
        if asked == "PRIORITY" and self._random.random() < self.config.priority_fallback_rate:
            return "STANDARD"
        return asked

    def shed(self, tier: str) -> bool:
        """Whether this call is shed (Flex only)."""
        return tier == "FLEX" and self._random.random() < self.config.flex_shed_rate

    def extra_latency(self, tier: str) -> float:
        """Seconds a call of ``tier`` takes beyond the usual."""
        return self.config.flex_latency_s if tier == "FLEX" else 0.0
