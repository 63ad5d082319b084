"""The emulator's Vertex AI side, driven by the unmodified SDK in ``vertexai=True`` mode with a
service-account key whose ``token_uri`` is the emulator (the real google-auth token exchange)."""

from __future__ import annotations

import json
import re
import time

import pytest
from google import genai
from google.genai import errors, types
from google.oauth2 import service_account

from tests.conftest import service_account_info

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"


@pytest.fixture
def vertex_client(emulator):
    credentials = service_account.Credentials.from_service_account_info(
        service_account_info(f"{emulator.base_url}/token"), scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return genai.Client(vertexai=True, project="emu-project", location="us-central1", credentials=credentials,
                        http_options=types.HttpOptions(base_url=emulator.base_url))


async def test_generate_content_through_vertex_paths_sync_and_async(vertex_client):
    answer = vertex_client.models.generate_content(model=MODEL, contents="Vertex works. It answers.")
    assert answer.text and answer.usage_metadata.total_token_count > 0
    answer = await vertex_client.aio.models.generate_content(model=MODEL, contents="Async too. Also fine.")
    assert answer.text
    assert vertex_client.models.count_tokens(model=MODEL, contents="four words right here").total_tokens > 0


def test_vertex_paths_want_a_bearer_token(emulator):
    import urllib.error
    import urllib.request

    url = f"{emulator.base_url}/v1beta1/projects/p/locations/l/publishers/google/models/{MODEL}:generateContent"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"))
    assert refused.value.code == 401


def test_an_api_key_client_is_unaffected(client):
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model="no-such-model", contents="x")
    assert client.models.generate_content(model=MODEL, contents="Still fine. Yes.").text


def test_base_models_are_listed_for_vertex(vertex_client):
    names = [m.name for m in vertex_client.models.list(config={"query_base": True, "page_size": 50})]
    assert any(name.endswith("gemini-2.5-flash") for name in names)


def _vertex_input(gcs, rows):
    lines = [{"key": f"k{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"Row {i}. Two."}]}]}}
             for i in range(rows)]
    gcs.bucket("bkt").blob("in/requests.jsonl").upload_from_string("".join(json.dumps(x) + "\n" for x in lines))
    return "gs://bkt/in/requests.jsonl"


def _predictions(gcs, job):
    folder = job.output_info.gcs_output_directory.removeprefix("gs://bkt/")
    return [json.loads(line) for line in gcs.bucket("bkt").blob(f"{folder}/predictions.jsonl").download_as_text()
            .splitlines()]


def _wait(vertex_client, name, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = vertex_client.batches.get(name=name)
        if job.state.value in {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED", "JOB_STATE_FAILED",
                               "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}:
            return job
        time.sleep(0.1)
    raise TimeoutError(name)


def test_a_vertex_batch_reads_gcs_and_writes_predictions(vertex_client, gcs):
    job = vertex_client.batches.create(model=MODEL, src=_vertex_input(gcs, 5), config={"dest": "gs://bkt/out"})
    assert re.fullmatch(r"projects/[\w-]+/locations/us-central1/batchPredictionJobs/\d+", job.name), job.name
    assert job.state.value == "JOB_STATE_PENDING"
    job = _wait(vertex_client, job.name)
    assert job.state.value == "JOB_STATE_SUCCEEDED"
    assert job.completion_stats.successful_count == 5 and job.completion_stats.failed_count == 0
    lines = _predictions(gcs, job)
    assert [line["key"] for line in lines] == [f"k{i}" for i in range(5)]  # the key is echoed
    assert all(line["status"] == "" and line["response"]["candidates"] for line in lines)
    assert [j.name for j in vertex_client.batches.list(config={"page_size": 10})] == [job.name]


def test_row_errors_make_a_partially_succeeded_job(vertex_client, gcs, emulator):
    from gemini_batch_provider.emulator import RowErrors

    errors_ = RowErrors(rate=0.4)
    emulator.configure("vertex", row_errors=errors_)
    job = _wait(vertex_client, vertex_client.batches.create(model=MODEL, src=_vertex_input(gcs, 10),
                                                            config={"dest": "gs://bkt/out"}).name)
    assert job.state.value == "JOB_STATE_PARTIALLY_SUCCEEDED"
    failed = {line["key"] for line in _predictions(gcs, job) if line["status"]}
    assert failed == {f"k{i}" for i in range(10) if errors_.hits(f"k{i}")}
    assert job.completion_stats.failed_count == len(failed) > 0


def test_a_vertex_job_can_be_cancelled(vertex_client, gcs, emulator):
    emulator.configure("vertex", outcome="stall")
    name = vertex_client.batches.create(model=MODEL, src=_vertex_input(gcs, 2), config={"dest": "gs://bkt/out"}).name
    vertex_client.batches.cancel(name=name)
    assert vertex_client.batches.get(name=name).state.value == "JOB_STATE_CANCELLED"
