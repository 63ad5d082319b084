"""Costs: prices, the batch discount, cached and thinking tokens, estimates before sending."""

from __future__ import annotations

import re

import pytest

from gemini_batch_provider.core.cost import PRICES, Estimate, ModelPrice, cost_usd, estimate, price_of
from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.requests import RequestSpec, build_requests
from gemini_batch_provider.core.tokens import TokenSplit, estimate_split


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


def test_every_shipped_price_says_where_and_when_it_was_read():
    assert {"gemini-3-flash-preview", "gemini-3.1-pro-preview", "gemini-3.1-flash-lite", "gemini-2.5-flash"} <= set(
        PRICES)
    for model, price in PRICES.items():
        assert price.source.startswith("https://ai.google.dev/") and re.fullmatch(r"\d{4}-\d{2}", price.as_of), model


def test_a_prompt_over_the_long_context_size_prices_the_whole_request_at_the_long_context_rate():
    pro = PRICES["gemini-3.1-pro-preview"]  # $2 / $12 up to 200k prompt tokens, $4 / $18 above
    short = {"prompt_token_count": 200_000, "candidates_token_count": 1_000}
    long = {"prompt_token_count": 250_000, "candidates_token_count": 1_000}
    assert cost_usd(short, pro, batch=False) == pytest.approx(0.2 * 2.00 + 0.001 * 12.00)
    assert cost_usd(long, pro, batch=False) == pytest.approx(0.25 * 4.00 + 0.001 * 18.00)
    assert cost_usd(long, pro, batch=True) == pytest.approx((0.25 * 4.00 + 0.001 * 18.00) / 2)
    # An estimate prices each large request at its own tier, not the sum of all prompts.
    found = Estimate()
    found.add(TokenSplit(250_000, 1_000))
    for _ in range(10):
        found.add(TokenSplit(30_000, 1_000))
    expected = 0.25 * 4.00 + 0.001 * 18.00 + 10 * (0.03 * 2.00 + 0.001 * 12.00)
    assert found.usd(pro, batch=False) == pytest.approx(expected)


def test_audio_prompt_tokens_and_image_answer_tokens_take_their_own_prices():
    image_model = PRICES["gemini-3.1-flash-image-preview"]  # $3 text out, $60 image out
    usage = {"prompt_token_count": 1_000_000, "candidates_token_count": 1_000_000,
             "candidates_tokens_details": [{"modality": "IMAGE", "token_count": 400_000},
                                           {"modality": "TEXT", "token_count": 600_000}]}
    assert cost_usd(usage, image_model, batch=False) == pytest.approx(0.50 + 0.6 * 3.00 + 0.4 * 60.00)
    flash = PRICES["gemini-2.5-flash"]  # $0.30 text in, $1.00 audio in
    heard = {"prompt_token_count": 1_000_000, "prompt_tokens_details": [{"modality": "AUDIO", "token_count": 500_000}]}
    assert cost_usd(heard, flash, batch=False) == pytest.approx(0.5 * 0.30 + 0.5 * 1.00)


def test_a_deployment_prices_file_adds_and_overrides_models_and_an_operators_prices_win(tmp_path):
    deployment = tmp_path / "prices.toml"
    deployment.write_text('["gemini-9-flash"]\ninput = 1.0\noutput = 2.0\ncached = 0.1\n'
                          '["gemini-2.5-flash"]\ninput = 0.2\noutput = 2.0\ncached = 0.05\n')
    assert price_of("gemini-9-flash") is None
    assert price_of("gemini-9-flash", prices_file=str(deployment)).input == 1.0
    assert price_of("gemini-2.5-flash", prices_file=str(deployment)).input == 0.2
    assert price_of("gemini-2.5-pro", prices_file=str(deployment)) == PRICES["gemini-2.5-pro"]
    mine = {"gemini-2.5-flash": {"input": 0.25, "output": 2.0, "cached": 0.05}}
    assert price_of("gemini-2.5-flash", mine, prices_file=str(deployment)).input == 0.25


@pytest.mark.parametrize(("content", "words"), [
    ('["m"]\ninput = 1\n', "missing ['output', 'cached']"),
    ('["m"]\ninput = -1\noutput = 1\ncached = 0\n', "input must be a finite number"),
    ('["m"]\ninput = 1\noutput = 1\ncached = 0\nlong_context = { above_prompt_tokens = 10 }\n', "above_prompt_tokens"),
    ('["m"]\ninput = 1\noutput = 1\ncached = 0\nspeed = 3\n', "unknown field(s) ['speed']"),
    ("not toml [", "is not TOML"),
])
def test_a_bad_prices_file_is_refused_naming_the_file_and_the_model(tmp_path, content, words):
    path = tmp_path / f"bad-{abs(hash(content))}.toml"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        price_of("m", prices_file=str(path))
    assert str(path) in str(info.value) and words in str(info.value)


def test_an_image_answer_is_estimated_at_the_image_output_price_and_media_resolution_counts():
    spec = RequestSpec(prompt_template="{t}", generation_config={"response_modalities": ["IMAGE"]})
    found = estimate(build_requests([{"t": "x" * 400}], spec), "gemini-3.1-flash-image-preview")
    assert (found.prompt_tokens, found.output_tokens, found.picture_tokens) == (100, 1290, 1290)  # no text asked
    price = PRICES["gemini-3.1-flash-image-preview"]
    assert found.usd(price, batch=False) == pytest.approx((100 * price.input + 1290 * price.output_image) / 1e6)
    request = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]}],
               "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_HIGH"}}
    assert estimate_split(request, "gemini-3-flash-preview").prompt == 1120  # Gemini 3 at high resolution
    assert estimate_split(request, "gemini-2.5-flash").prompt == 256
    assert estimate_split({"contents": request["contents"]}, "gemini-3-flash-preview").prompt == 258  # unset
