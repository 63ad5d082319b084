"""The online engine against the emulator through the real SDK: limits, retries, errors, cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest
from google import genai
from google.genai import types

from gemini_batch_provider.core.online import OnlineEngine, OnlineSettings
from gemini_batch_provider.core.requests import RequestSpec, build_requests
from gemini_batch_provider.core.tokens import estimate_tokens
from gemini_batch_provider.core.transient import server_retry_delay
from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread, FaultConfig

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"


def _options(emu):
    """As GeminiHook builds them: the SDK's own retries off."""
    return types.HttpOptions(base_url=emu.base_url, retry_options=types.HttpRetryOptions(attempts=1))


def _requests(n):
    records = [{"t": f"Row {i} asks a question about topic {i}."} for i in range(n)]
    return list(build_requests(records, RequestSpec(prompt_template="{t}")))


def _run(config, rows=8, model=MODEL, **settings):
    with EmulatorThread(config) as emu:
        client = genai.Client(api_key="online-key-1", http_options=_options(emu))
        engine = OnlineEngine(client, model, OnlineSettings(initial_backoff_s=0.05, **settings))
        landed = []
        stats = asyncio.run(engine.run(_requests(rows), landed.append, total=rows))
        return landed, stats, dict(emu.state.counters)


def _keys(landed):
    return sorted(int(row["key"]) for row in landed)


def test_every_row_lands_once_through_5xx_and_resets():
    faults = FaultConfig(error_503_rate=0.2, error_500_rate=0.1, reset_rate=0.1, seed=3)
    landed, stats, counters = _run(EmulatorConfig(faults=faults), rows=40, concurrency=8, max_attempts=30)
    assert _keys(landed) == list(range(40))
    assert all(row["status"] == "succeeded" and row["text"] for row in landed)
    assert stats.retried_errors == counters["500"] + counters["503"] + counters["reset"] > 0
    assert stats.calls == 40 + stats.retried_errors


def test_the_servers_retry_delay_is_honoured():
    """240 RPM over a 1 s window is 4 calls a second; 8 at once: 4 get a 429 saying when the window frees, and waiting
    exactly that long makes their single retry succeed (an earlier retry would be refused again)."""
    landed, stats, counters = _run(EmulatorConfig(rpm=240, quota_window_s=1.0), rows=8, concurrency=8)
    assert _keys(landed) == list(range(8))
    assert all(row["status"] == "succeeded" for row in landed)
    assert stats.responses_429 == counters["429"] == 4
    assert stats.calls == 12


def test_client_side_rpm_limit_keeps_under_the_quota():
    quota = EmulatorConfig(rpm=240, quota_window_s=1.0)  # 4 in any second
    _, unlimited, _ = _run(quota, rows=10, concurrency=10)
    landed, limited, _ = _run(quota, rows=10, concurrency=10, rpm=120)
    assert unlimited.responses_429 > 0  # without the limiter the burst is refused...
    assert limited.responses_429 == 0 and limited.calls == 10  # ...with it, nothing is
    assert _keys(landed) == list(range(10))


def test_non_retryable_errors_fail_the_row_at_once():
    landed, stats, _ = _run(EmulatorConfig(), rows=3, model="no-such-model")
    assert stats.calls == 3
    assert {(r["status"], r["error"]["code"], r["error"]["status"]) for r in landed} == {("failed", 404, "NOT_FOUND")}
    assert stats.gave_up == 0  # refused, not unanswered


def test_rows_whose_retries_run_out_land_failed_not_lost():
    landed, stats, _ = _run(EmulatorConfig(faults=FaultConfig(error_503_rate=1.0)), rows=5, max_attempts=3)
    assert _keys(landed) == list(range(5))
    assert {(r["status"], r["error"]["code"]) for r in landed} == {("failed", 503)}
    assert stats.calls == 15 and stats.gave_up == 5


def test_timeouts_are_retried_then_reported():
    faults = FaultConfig(slow_rate=1.0, slow_s=5.0)
    landed, stats, _ = _run(EmulatorConfig(faults=faults), rows=2, request_timeout_s=0.2, max_attempts=2)
    assert {r["error"]["status"] for r in landed} == {"DEADLINE_EXCEEDED"}
    assert stats.calls == 4


def test_cancelling_the_run_cancels_calls_in_flight():
    with EmulatorThread(EmulatorConfig(faults=FaultConfig(latency_s=30.0))) as emu:
        client = genai.Client(api_key="online-key-1", http_options=_options(emu))
        engine = OnlineEngine(client, MODEL, OnlineSettings(concurrency=4))
        landed = []

        async def run_then_cancel():
            task = asyncio.create_task(engine.run(_requests(10), landed.append, total=10))
            while engine.stats.calls < 4:  # until the engine has filled its 4 call slots (each call takes 30 s)
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return engine.stats

        stats = asyncio.run(asyncio.wait_for(run_then_cancel(), 5))
        assert stats.calls == 4 and landed == []  # only the 4 in flight were sent, none landed


def test_server_retry_delay_parsing():
    from google.genai import errors

    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "m",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}]}}
    assert server_retry_delay(errors.ClientError(429, body)) == 2.5
    assert server_retry_delay(errors.ServerError(503, {"error": {"code": 503}})) is None
    assert server_retry_delay(TimeoutError()) is None


def test_token_estimate_counts_prompt_system_and_output_budget():
    spec = RequestSpec(prompt_template="{t}", system_instruction="x" * 40, generation_config={"max_output_tokens": 7})
    [(_, request)] = build_requests([{"t": "y" * 80}], spec)
    assert estimate_tokens(request) == 20 + 10 + 7
    [(_, bare)] = build_requests([{"t": "y" * 80}], RequestSpec(prompt_template="{t}"))
    assert estimate_tokens(bare) == 20 + 20


@pytest.mark.parametrize("bad", [{"concurrency": 0}, {"rpm": -1}, {"request_timeout_s": 0}])
def test_settings_refuse_non_positive_limits(bad):
    with pytest.raises(ValueError, match="must be a positive finite number"):
        OnlineSettings(**bad)


def test_client_side_tpm_limit_keeps_under_the_quota():
    """At 90% of the quota the limiter may run a tenth of a second's worth ahead; the server counts calls
    as they arrive. Over a 5 s window that leaves half a second for calls admitted on time to arrive
    late and bunched (a loaded machine delays some by a tenth of a second or more; over a 1 s window
    such a delay alone earned a 429)."""
    quota = EmulatorConfig(tpm=6000, quota_window_s=5.0)  # 500 tokens in any 5 s; a row costs ~20
    lite = "gemini-2.5-flash-lite"  # no thinking: each row's tokens are known before the call
    _, unlimited, _ = _run(quota, rows=40, model=lite, concurrency=20)
    landed, limited, _ = _run(quota, rows=40, model=lite, concurrency=20, tpm=5400)
    assert unlimited.responses_429 > 0
    assert limited.responses_429 == 0 and _keys(landed) == list(range(40))
    assert all(row["status"] == "succeeded" for row in landed)


def test_no_log_line_per_call_from_the_sdk(caplog):
    caplog.set_level(logging.INFO)
    landed, _, _ = _run(EmulatorConfig(), rows=3)
    assert len(landed) == 3
    sdk_lines = [r.getMessage() for r in caplog.records if r.name.startswith("google_genai")]
    assert sdk_lines == []


def test_the_sdk_transport_errors_are_transient():
    from gemini_batch_provider.core.transient import is_retryable
    from gemini_batch_provider.emulator.server import free_port

    # A refused connection (a restarting server) is worth a retry, whichever HTTP client this
    # google-genai release sends sync calls through (httpx on 2.x, httpx2 on 3.x: hooks.sdk).
    client = genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=f"http://127.0.0.1:{free_port()}", retry_options=types.HttpRetryOptions(attempts=1)))
    with pytest.raises(Exception) as refused:
        client.models.get(model="gemini-2.5-flash")
    assert type(refused.value).__module__.split(".")[0] in ("httpx", "httpx2")
    assert is_retryable(refused.value)
    assert not is_retryable(ValueError("a bug"))
