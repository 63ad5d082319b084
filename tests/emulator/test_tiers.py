"""Service tiers of the emulator's generateContent (Standard, Flex, Priority), through the real SDK."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from google.genai import errors, types

from gemini_batch_provider.emulator.tiers import TierConfig

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"


def _generate(client, tier: str | None):
    config = types.GenerateContentConfig(service_tier=tier) if tier else None
    return client.models.generate_content(model=MODEL, contents="Flex is the batch price, answered at once.",
                                          config=config)


def _post(emulator, body: dict) -> tuple[dict, str]:
    """A raw generateContent call: the answer's JSON and its ``x-gemini-service-tier`` header."""
    request = urllib.request.Request(f"{emulator.base_url}/v1beta/models/{MODEL}:generateContent", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"x-goog-api-key": "k", "content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read()), response.headers["x-gemini-service-tier"]


@pytest.mark.parametrize(("asked", "served"), [(None, "standard"), ("standard", "standard"), ("flex", "flex"),
                                               ("priority", "priority")])
def test_the_answer_names_the_tier_that_served_it(client, emulator, asked, served):
    emulator.configure("tiers", config=TierConfig(flex_latency_s=0.0))
    # The SDK (3.6) sends the tier, and keeps the header; its usage type has no field for the body's.
    assert _generate(client, asked).sdk_http_response.headers["x-gemini-service-tier"] == served
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi."}]}], **({"serviceTier": asked} if asked else {})}
    answer, header = _post(emulator, body)
    assert answer["usageMetadata"]["serviceTier"] == served.upper() and header == served


def test_flex_takes_its_extra_time_and_sheds_calls_while_standard_and_priority_are_never_shed(client, emulator):
    emulator.configure("tiers", config=TierConfig(flex_latency_s=0.3))
    started = time.monotonic()
    assert _generate(client, "flex").text
    assert time.monotonic() - started >= 0.3  # Flex answers later (minutes on the live API)

    emulator.configure("tiers", config=TierConfig(flex_latency_s=0.0, flex_shed_rate=1.0))
    with pytest.raises(errors.ServerError) as shed:
        _generate(client, "flex")
    assert (shed.value.code, shed.value.status) == (503, "UNAVAILABLE") and "shed" in shed.value.message
    assert _generate(client, "priority").text and _generate(client, None).text
    assert emulator.state.counters["shed"] == 1


def test_priority_falls_back_to_standard_when_capacity_is_short_and_says_so(client, emulator):
    emulator.configure("tiers", config=TierConfig(priority_fallback_rate=1.0))
    assert _generate(client, "priority").sdk_http_response.headers["x-gemini-service-tier"] == "standard"
    emulator.configure("tiers", config=TierConfig(priority_fallback_rate=0.0))
    assert _generate(client, "priority").sdk_http_response.headers["x-gemini-service-tier"] == "priority"


def test_a_tier_that_is_no_tier_is_refused_with_400(emulator):
    with pytest.raises(urllib.error.HTTPError) as refused:
        _post(emulator, {"contents": [{"role": "user", "parts": [{"text": "Hi."}]}], "serviceTier": "cheap"})
    assert refused.value.code == 400
    assert "Invalid value at 'service_tier'" in json.loads(refused.value.read())["error"]["message"]
