"""What a run costs, in US dollars: estimated before anything is sent, actual from ``usage_metadata``.

Prices per million tokens from Google's Gemini Developer API pricing page
(https://ai.google.dev/gemini-api/docs/pricing), as of 2026-11, standard (paid) tier, text, prompts
up to 200k tokens: thinking tokens are billed as output; cached prompt tokens at the caching price;
the Batch API costs half (https://ai.google.dev/gemini-api/docs/batch-mode). Prices change: give
your own with ``prices`` (``{"model": {"input": $, "output": $, "cached": $}}`` per million tokens).
A model without a price gets no cost (None), never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .tokens import estimate_split

BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per million tokens."""

    input: float
    output: float
    cached: float

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of US dollars per million tokens, zero or more, "
                                 f"got {value!r}")


PRICES: dict[str, ModelPrice] = {
    "gemini-2.5-pro": ModelPrice(input=1.25, output=10.00, cached=0.31),
    "gemini-2.5-flash": ModelPrice(input=0.30, output=2.50, cached=0.075),
    "gemini-2.5-flash-lite": ModelPrice(input=0.10, output=0.40, cached=0.025),
    "gemini-embedding-001": ModelPrice(input=0.15, output=0.0, cached=0.0),  # input tokens only
}


def price_of(model: str, overrides: Mapping[str, Mapping[str, float]] | None = None) -> ModelPrice | None:
    """The price of ``model`` (``models/`` and ``publishers/google/models/`` prefixes ignored)."""
    name = model.rsplit("/", 1)[-1]
    if overrides and name in overrides:
        return ModelPrice(**overrides[name])
    return PRICES.get(name)


def cost_usd(usage: Mapping[str, int], price: ModelPrice, batch: bool) -> float:
    """The cost of ``usage`` (``usage_metadata`` fields, snake_case) at ``price``, halved for batch."""
    cached = usage.get("cached_content_token_count", 0)
    prompt = usage.get("prompt_token_count", 0) - cached
    output = usage.get("candidates_token_count", 0) + usage.get("thoughts_token_count", 0)
    dollars = (prompt * price.input + cached * price.cached + output * price.output) / 1e6
    return dollars * (BATCH_DISCOUNT if batch else 1.0)


@dataclass
class Estimate:
    """Estimated tokens of a set of requests and, when the model has a price, their cost."""

    requests: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0

    def add(self, prompt: int, output: int) -> None:
        """Count one request of ``prompt`` and ``output`` estimated tokens (``estimate_split``)."""
        self.requests += 1
        self.prompt_tokens += prompt
        self.output_tokens += output

    def usd(self, price: ModelPrice | None, batch: bool) -> float | None:
        if price is None:
            return None
        usage = {"prompt_token_count": self.prompt_tokens, "candidates_token_count": self.output_tokens}
        return cost_usd(usage, price, batch)


def estimate(requests: Iterable[tuple[str, dict[str, Any]]]) -> Estimate:
    found = Estimate()
    for _, request in requests:
        found.add(*estimate_split(request))
    return found
