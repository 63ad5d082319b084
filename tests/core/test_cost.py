"""Costs: prices, the batch discount, cached and thinking tokens, estimates before sending."""

from __future__ import annotations

import pytest

from gemini_batch_provider.core.cost import PRICES, ModelPrice, cost_usd, estimate, price_of
from gemini_batch_provider.core.requests import RequestSpec, build_requests


def test_cost_counts_cached_at_the_cache_price_thoughts_as_output_and_halves_batch():
    price = ModelPrice(input=1.0, output=10.0, cached=0.1)
    usage = {"prompt_token_count": 1_000_000, "cached_content_token_count": 400_000,
             "candidates_token_count": 100_000, "thoughts_token_count": 100_000}
    online = 0.6 * 1.0 + 0.4 * 0.1 + 0.2 * 10.0
    assert cost_usd(usage, price, batch=False) == pytest.approx(online)
    assert cost_usd(usage, price, batch=True) == pytest.approx(online / 2)


def test_prices_by_model_name_with_prefixes_and_overrides():
    assert price_of("models/gemini-2.5-flash") == price_of("publishers/google/models/gemini-2.5-flash") == PRICES[
        "gemini-2.5-flash"]
    assert price_of("gemini-9-unknown") is None
    assert price_of("gemini-9-unknown", {"gemini-9-unknown": {"input": 1, "output": 2, "cached": 0.5}}) == ModelPrice(
        1, 2, 0.5)


def test_an_estimate_adds_prompt_and_output_tokens_of_every_request():
    spec = RequestSpec(prompt_template="{t}", generation_config={"max_output_tokens": 10})
    found = estimate(build_requests([{"t": "x" * 400}, {"t": "y" * 40}], spec))
    assert (found.requests, found.prompt_tokens, found.output_tokens) == (2, 100 + 10, 20)
    price = ModelPrice(input=1e6, output=1e6, cached=0)  # a dollar a token: the sum is easy to read
    assert found.usd(price, batch=False) == pytest.approx(130) and found.usd(price, batch=True) == pytest.approx(65)
    assert found.usd(None, batch=True) is None
