"""Batches of the emulator, driven by the unmodified google-genai SDK (sync and client.aio)."""

from __future__ import annotations

import asyncio
import io
import json
import urllib.request

import pytest
from google.genai import errors

from tests.conftest import wait_for_batch

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"


def _input_file(client, lines):
    data = "".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines)
    return client.files.upload(file=io.BytesIO(data.encode()), config={"mime_type": "jsonl"}).name


def _request(text):
    return {"contents": [{"parts": [{"text": text}], "role": "user"}]}


def test_file_batch_goes_pending_running_succeeded_with_one_output_line_per_input(client):
    src = _input_file(
        client,
        [
            {"key": "a", "request": _request("The first row is here. It talks about cats.")},
            "{not json\n",
            {"key": "c", "request": {"contents": "not a list"}},
            {"key": "d", "request": _request("The last row.")},
        ],
    )
    job = client.batches.create(model=MODEL, src=src, config={"display_name": "nightly"})
    assert job.name.startswith("batches/")
    assert job.display_name == "nightly"
    assert job.state.value == "JOB_STATE_PENDING"
    job, states = wait_for_batch(client, job.name)
    assert states == ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
    assert job.dest.file_name == f"files/batch-{job.name.removeprefix('batches/')}"
    lines = [json.loads(line) for line in client.files.download(file=job.dest.file_name).splitlines()]
    assert [line["key"] for line in lines] == ["a", None, "c", "d"]
    assert lines[0]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "The first row is here."
    assert lines[0]["response"]["usageMetadata"]["totalTokenCount"] > 0
    assert lines[1]["error"] == {"code": 3, "message": lines[1]["error"]["message"]}  # gRPC INVALID_ARGUMENT, no status
    assert lines[2]["error"]["code"] == 3 and "contents" in lines[2]["error"]["message"]
    assert "response" in lines[3]


def test_operation_wrapping_and_batch_stats_on_the_wire(client, emulator):
    job = client.batches.create(model=MODEL, src=_input_file(client, [{"key": "a", "request": _request("Hi.")}]))
    wait_for_batch(client, job.name)
    request = urllib.request.Request(f"{emulator.base_url}/v1beta/{job.name}", headers={"x-goog-api-key": "k"})
    with urllib.request.urlopen(request) as response:
        op = json.loads(response.read())
    assert op["done"] is True
    assert op["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert op["metadata"]["batchStats"] == {"requestCount": "1", "successfulRequestCount": "1"}  # zeros left out
    assert op["response"]["responsesFile"] == op["metadata"]["output"]["responsesFile"]


def test_a_batch_priority_sent_through_extra_body_is_kept_and_a_bad_one_is_refused(client, emulator):
    src = _input_file(client, [{"key": "a", "request": _request("Hi.")}])

    def create(priority):
        return client.batches.create(model=MODEL, src=src, config={
            "http_options": {"extra_body": {"batch": {"priority": priority}}}})

    def resource(name):
        request = urllib.request.Request(f"{emulator.base_url}/v1beta/{name}", headers={"x-goog-api-key": "k"})
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())["metadata"]

    assert resource(create("12").name)["priority"] == "12"  # an int64 is written back as a string
    assert resource(create(-3).name)["priority"] == "-3"
    assert "priority" not in resource(create(0).name)  # proto3 JSON leaves the default out
    for bad in ("high", 1.5, str(2**63)):
        with pytest.raises(errors.ClientError) as refused:
            create(bad)
        assert refused.value.code == 400 and "Invalid value at 'batch.priority' (TYPE_INT64)" in refused.value.message
    assert len(emulator.state.store.batches) == 3


async def test_inline_batch_async_echoes_metadata_in_order(client):
    src = [
        {"contents": "Why is the sky blue? Because of scattering.", "metadata": {"key": "r1"}},
        {"contents": "Tell me a joke.", "metadata": {"key": "r2"}},
    ]
    job = await client.aio.batches.create(model=MODEL, src=src)
    while not (job := await client.aio.batches.get(name=job.name)).done:
        await asyncio.sleep(0.05)
    responses = job.dest.inlined_responses
    assert [r.metadata for r in responses] == [{"key": "r1"}, {"key": "r2"}]
    assert responses[1].response.text == "Tell me a joke."


def test_cancel_then_delete(client):
    job = client.batches.create(model=MODEL, src=_input_file(client, [{"key": "a", "request": _request("Hi.")}]))
    client.batches.cancel(name=job.name)
    assert client.batches.get(name=job.name).state.value == "JOB_STATE_CANCELLED"
    client.batches.delete(name=job.name)
    with pytest.raises(errors.ClientError) as info:
        client.batches.get(name=job.name)
    assert info.value.code == 404


async def test_list_pages_async_and_sync(client):
    src = _input_file(client, [{"key": "a", "request": _request("Hi.")}])
    names = {(await client.aio.batches.create(model=MODEL, src=src)).name for _ in range(3)}
    assert {j.name async for j in await client.aio.batches.list(config={"page_size": 2})} == names
    assert {j.name for j in client.batches.list(config={"page_size": 2})} == names
    for name in names:
        await client.aio.batches.cancel(name=name)
        await client.aio.batches.delete(name=name)
    assert [j async for j in await client.aio.batches.list()] == []


def test_create_from_missing_file_or_unknown_model_is_refused(client):
    with pytest.raises(errors.ClientError) as info:
        client.batches.create(model=MODEL, src="files/doesnotexist")
    assert info.value.code == 400 and "does not exist" in info.value.message
    src = _input_file(client, [{"key": "a", "request": _request("Hi.")}])
    with pytest.raises(errors.ClientError) as info:
        client.batches.create(model="no-such-model", src=src)
    assert info.value.code == 404


def test_row_errors_on_demand_hit_the_same_keys_in_every_job(client, emulator):
    from gemini_batch_provider.emulator import RowErrors

    emulator.configure("batches", row_errors=RowErrors(rate=0.3, code=14))
    lines = [{"key": f"k{i}", "request": _request(f"Row {i}.")} for i in range(40)]
    failed_per_job = []
    for _ in range(2):
        job, _ = wait_for_batch(client, client.batches.create(model=MODEL, src=_input_file(client, lines)).name)
        output = [json.loads(x) for x in client.files.download(file=job.dest.file_name).decode().splitlines()]
        assert [o["key"] for o in output] == [f"k{i}" for i in range(40)]
        failed = {o["key"] for o in output if "error" in o}
        # As live lines come: a gRPC canonical code and no status, the answer before the key.
        injected = {"code": 14, "message": "An injected row error of the emulator."}
        assert all(o["error"] == injected for o in output if "error" in o)
        assert all(list(o) == ["error" if "error" in o else "response", "key"] for o in output)
        failed_per_job.append(failed)
    assert 4 <= len(failed_per_job[0]) <= 20 and failed_per_job[0] == failed_per_job[1]


@pytest.mark.parametrize(("outcome", "state"), [("fail", "JOB_STATE_FAILED"), ("expire", "JOB_STATE_EXPIRED")])
def test_jobs_fail_or_expire_on_demand_without_results(client, emulator, outcome, state):
    emulator.configure("batches", outcome=outcome)
    job, states = wait_for_batch(client, client.batches.create(model=MODEL, src=_input_file(client, [
        {"key": "a", "request": _request("Hi.")}])).name)
    assert job.state.value == state and job.dest is None
    assert ("JOB_STATE_RUNNING" in states) == (outcome == "fail")


def test_a_stalled_job_runs_until_cancelled(client, emulator):
    emulator.configure("batches", outcome="stall")
    name = client.batches.create(model=MODEL, src=_input_file(client, [{"key": "a", "request": _request("Hi.")}])).name
    emulator.configure("batches", outcome="succeed")
    # A job created after it, with the same timing, ends: the stalled one would have ended by then.
    later, _ = wait_for_batch(client, client.batches.create(model=MODEL, src=_input_file(client, [
        {"key": "a", "request": _request("Hi.")}])).name)
    assert later.state.value == "JOB_STATE_SUCCEEDED"
    assert client.batches.get(name=name).state.value == "JOB_STATE_RUNNING"
    client.batches.cancel(name=name)
    assert client.batches.get(name=name).state.value == "JOB_STATE_CANCELLED"


def test_enqueued_token_limit_answers_429_on_create_until_a_job_ends(client, emulator):
    emulator.configure("batches", max_enqueued_tokens=150)
    lines = [{"key": str(i), "request": _request("word " * 10)} for i in range(4)]  # ~440 bytes: ~110 tokens
    first = client.batches.create(model=MODEL, src=_input_file(client, lines)).name
    second_file = _input_file(client, lines)
    with pytest.raises(errors.ClientError) as refused:
        client.batches.create(model=MODEL, src=second_file)
    assert refused.value.code == 429 and refused.value.status == "RESOURCE_EXHAUSTED"
    delay = refused.value.details["error"]["details"][0]["retryDelay"]
    assert 0 < float(delay.rstrip("s")) <= emulator.state.batches.pending_s + emulator.state.batches.running_s
    wait_for_batch(client, first)
    assert client.batches.create(model=MODEL, src=second_file).name  # room again


def test_uploads_over_the_file_limit_are_refused(client, emulator):
    emulator.configure("config", max_file_bytes=100)
    with pytest.raises(errors.ClientError) as refused:
        _input_file(client, [{"key": str(i), "request": _request("x" * 50)} for i in range(3)])
    assert refused.value.code == 400 and "larger than the limit" in refused.value.message
    assert emulator.state.store.files == {}


def test_files_and_jobs_survive_a_restart_and_jobs_carry_on(tmp_path):
    from google import genai
    from google.genai import types

    from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread

    config = EmulatorConfig(data_dir=tmp_path, batch_pending_s=0.5, batch_running_s=0.5)
    lines = [{"key": "a", "request": _request("One sentence. Another one.")}]
    with EmulatorThread(config) as emu:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=emu.base_url))
        name = client.batches.create(model=MODEL, src=_input_file(client, lines)).name
        port = emu.port
    with EmulatorThread(config, port=port) as emu:  # the same folder and address: clients carry on
        job, _ = wait_for_batch(client, name)
        assert job.state.value == "JOB_STATE_SUCCEEDED"
        [line] = client.files.download(file=job.dest.file_name).decode().splitlines()
        assert json.loads(line)["key"] == "a"
