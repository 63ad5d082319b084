"""Emulator quotas (429 with RetryInfo and Retry-After) and injected faults, seen through the real SDK."""

from __future__ import annotations

import asyncio
import time

import pytest
from google import genai
from google.genai import errors, types

from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread, FaultConfig

pytestmark = pytest.mark.integration


def _client(emu, key="quota-key-1"):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=emu.base_url))


def test_rpm_quota_answers_429_with_retry_info_and_retry_after():
    with EmulatorThread(EmulatorConfig(rpm=3)) as emu:
        client = _client(emu)
        for _ in range(3):
            client.models.generate_content(model="gemini-2.5-flash", contents="Hello there, friend.")
        with pytest.raises(errors.ClientError) as info:
            client.models.generate_content(model="gemini-2.5-flash", contents="Hello there, friend.")
        exc = info.value
        assert exc.code == 429 and exc.status == "RESOURCE_EXHAUSTED"
        [retry_info] = exc.details["error"]["details"]
        assert retry_info["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
        assert 59 < float(retry_info["retryDelay"].rstrip("s")) <= 60
        assert exc.response.headers["Retry-After"] == "60"
        # Quotas are per key: another key still gets through.
        assert _client(emu, "quota-key-2").models.generate_content(model="gemini-2.5-flash", contents="Hi.").text
        assert emu.state.counters["429"] == 1


def test_tpm_quota_counts_tokens():
    with EmulatorThread(EmulatorConfig(tpm=60)) as emu:
        client = _client(emu)
        text = "word " * 40  # about 50 prompt tokens and a few output tokens per call
        client.models.generate_content(model="gemini-2.5-flash", contents=text)
        with pytest.raises(errors.ClientError) as info:
            client.models.generate_content(model="gemini-2.5-flash", contents=text)
        assert info.value.code == 429


async def test_faults_and_latency_at_the_configured_rates():
    faults = FaultConfig(latency_s=0.05, error_503_rate=0.2, error_500_rate=0.1, reset_rate=0.1, seed=7)
    with EmulatorThread(EmulatorConfig(faults=faults)) as emu:
        client = _client(emu)

        async def one():
            try:
                await client.aio.models.generate_content(model="gemini-2.5-flash", contents="Hi there.")
                return "ok"
            except errors.APIError as exc:
                return str(exc.code)
            except Exception:
                return "reset"

        started = time.monotonic()
        outcomes = await asyncio.gather(*(one() for _ in range(200)))
        assert time.monotonic() - started >= 0.05
        counts = {o: outcomes.count(o) for o in set(outcomes)}
        assert set(counts) == {"ok", "503", "500", "reset"}
        assert 20 <= counts["503"] <= 60 and 5 <= counts["500"] <= 35 and counts["ok"] >= 90
        assert emu.state.counters["503"] == counts["503"]


@pytest.mark.parametrize(("fault_latency_s", "low", "high"), [(0.0, 0.0, 0.3), (0.6, 0.6, 5.0)])
def test_a_fault_comes_at_once_unless_told_to_take_its_time(fault_latency_s, low, high):
    faults = FaultConfig(latency_s=0.6, error_503_rate=1.0, fault_latency_s=fault_latency_s)
    with EmulatorThread(EmulatorConfig(faults=faults)) as emu:
        client = _client(emu)
        started = time.monotonic()
        with pytest.raises(errors.ServerError):
            client.models.generate_content(model="gemini-2.5-flash", contents="Hi there.")
        assert low <= time.monotonic() - started < high
