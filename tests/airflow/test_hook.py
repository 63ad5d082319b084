"""GeminiHook against the emulator: connection parsing, connection test, the batch calls it wraps."""

from __future__ import annotations

import json

import pytest

from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread
from gemini_batch_provider.hooks.gemini import GeminiHook
from tests.conftest import vertex_conn

pytestmark = pytest.mark.integration


def test_connection_test_lists_models(gemini_conn):
    ok, message = GeminiHook(gemini_conn).test_connection()
    assert ok and "9 models visible" in message and "models/gemini-3.1-pro-preview" in message


def test_connection_test_reports_a_refused_key_without_it(monkeypatch):
    with EmulatorThread(EmulatorConfig(api_keys=frozenset({"the-right-key"}))) as emu:
        conn = {"conn_type": "gemini", "password": "wrong-key-abcdef", "extra": {"base_url": emu.base_url}}
        monkeypatch.setenv("AIRFLOW_CONN_GEMINI_WRONG", json.dumps(conn))
        ok, message = GeminiHook("gemini_wrong").test_connection()
    assert not ok and "API key not valid" in message and "wrong-key-abcdef" not in message


def test_api_version_extra_is_used(emulator, monkeypatch):
    extra = {"base_url": emulator.base_url, "api_version": "v1"}
    conn = {"conn_type": "gemini", "password": "k-123456", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_V1", json.dumps(conn))
    hook = GeminiHook("gemini_v1")
    assert hook.client._api_client._http_options.api_version == "v1"
    assert hook.client.models.count_tokens(model="gemini-2.5-flash", contents="abcdefgh").total_tokens == 2


@pytest.mark.parametrize("extra", [{}, {"base_url": "http://127.0.0.1:9"}], ids=["host", "extra-wins"])
def test_the_host_is_the_base_url_when_the_extra_has_none(emulator, monkeypatch, extra):
    """common.ai hands its adapters the host as the base URL: one connection serves both."""
    host = emulator.base_url if not extra else "http://127.0.0.1:1"
    conn = {"conn_type": "gemini", "password": "k-123456", "host": host, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_HOST", json.dumps(conn))
    hook = GeminiHook("gemini_host")
    assert hook.client._api_client._http_options.base_url.rstrip("/") == (extra.get("base_url") or host)
    if not extra:  # and it is where the calls go
        assert hook.client.models.count_tokens(model="gemini-2.5-flash", contents="abcdefgh").total_tokens == 2


def test_upload_create_get_cancel_download(gemini_conn, emulator, tmp_path):
    hook = GeminiHook(gemini_conn)
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps({"key": "a", "request": {"contents": [{"parts": [{"text": "Hi."}]}]}}) + "\n")
    uploaded = hook.upload_file(path, display_name="in")
    hook.download_file(uploaded.name, tmp_path / "copy.jsonl")
    assert (tmp_path / "copy.jsonl").read_bytes() == path.read_bytes()
    job = hook.create_batch_job("gemini-2.5-flash", src=uploaded.name, display_name="job-1")
    assert hook.get_batch_job(job.name).display_name == "job-1"
    others = [hook.create_batch_job("gemini-2.5-flash", src=uploaded.name, display_name=f"other-{i}") for i in range(4)]
    assert hook.find_batch_job("job-1").name == job.name  # found across list pages (page size 2)
    assert hook.find_batch_job("other-3").name == others[-1].name and hook.find_batch_job("nope") is None
    hook.cancel_batch_job(job.name)
    assert hook.get_batch_job(job.name).state.value == "JOB_STATE_CANCELLED"
    hook.delete_file(uploaded.name)
    assert uploaded.name.removeprefix("files/") not in emulator.state.store.files


def test_a_vertex_connection_uses_the_service_account_key(emulator, monkeypatch):
    conn_id, _ = vertex_conn(monkeypatch, emulator)
    hook = GeminiHook(conn_id)
    ok, message = hook.test_connection()
    assert ok, message
    assert hook.client.vertexai and hook.client.models.generate_content(model="gemini-2.5-flash",
                                                                        contents="Via Vertex. Fine.").text


@pytest.mark.parametrize(("password", "extra", "expected"), [
    ('{"type": "service_account"}', {"project": "p"}, "must be a service-account key"),
    ("not json at all", {"project": "p"}, "must be a service-account key"),
    ("", {}, "without a project"),
])
def test_a_bad_vertex_connection_is_refused_without_its_secret(monkeypatch, password, extra, expected):
    from airflow.providers.common.compat.sdk import AirflowException

    conn = {"conn_type": "gemini", "password": password, "extra": {"vertexai": "true", **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_BAD", json.dumps(conn))
    with pytest.raises(AirflowException, match=expected) as refused:
        GeminiHook("gemini_bad").client  # noqa: B018
    assert not password or password not in str(refused.value)


def test_a_bigquery_source_and_destination_pass_through_to_the_vertex_job(emulator, monkeypatch):
    conn_id, _ = vertex_conn(monkeypatch, emulator)
    hook = GeminiHook(conn_id)
    job = hook.create_batch_job("gemini-2.5-flash", src="bq://emu-project.reviews.input", display_name="from-bq",
                                dest="bq://emu-project.reviews.scored")
    [sent] = [j.resource for j in emulator.state.vertex.jobs.values()]
    assert sent["inputConfig"] == {"instancesFormat": "bigquery",
                                   "bigquerySource": {"inputUri": "bq://emu-project.reviews.input"}}
    assert sent["outputConfig"] == {"predictionsFormat": "bigquery",
                                    "bigqueryDestination": {"outputUri": "bq://emu-project.reviews.scored"}}
    assert sent["displayName"] == "from-bq" and job.name.endswith(sent["name"].rsplit("/", 1)[1])


def test_the_connection_secrets_are_registered_with_the_secrets_masker(emulator, monkeypatch):
    from airflow.providers.common.compat.sdk import redact

    api_key = "masker-check-key-7f3a91"
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_MASKED", json.dumps(
        {"conn_type": "gemini", "password": api_key, "extra": {"base_url": emulator.base_url}}))
    conn_id, key = vertex_conn(monkeypatch, emulator)
    private_key = json.loads(key)["private_key"]
    for read in ("gemini_masked", conn_id):  # reading the connection registers its secrets
        assert GeminiHook(read).connection.password
    assert redact(f"calling with {api_key}") == "calling with ***"
    line = redact(f"key: {private_key.splitlines()[0]} ... {private_key}")
    assert private_key not in line and "***" in line


@pytest.mark.parametrize(("env", "netrc", "trusted"), [
    ({}, False, False),  # nothing to find: no lookups on every request
    ({"HTTPS_PROXY": "http://proxy.internal:3128"}, False, True),
    ({"all_proxy": "http://proxy.internal:3128"}, False, True),
    ({}, True, True),
])
def test_the_shared_async_session_trusts_the_environment_when_it_has_a_proxy_or_netrc(
        gemini_conn, emulator, monkeypatch, tmp_path, env, netrc, trusted):
    import asyncio

    for name in ("http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    if netrc:
        (tmp_path / "netrc").write_text("machine example.com login a password b\n")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the emulator is reached directly, proxy or not

    from gemini_batch_provider.hooks.connection import loop_session

    async def poll():
        client = await GeminiHook().aget_client()
        model = await client.aio.models.get(model="gemini-2.5-flash")
        session = loop_session()
        return client._api_client._http_options.aiohttp_client is session, session.trust_env, model.name

    assert asyncio.run(poll()) == (True, trusted, "models/gemini-2.5-flash")


def test_hooks_on_one_loop_share_one_connection_read_and_a_failed_read_is_not_kept():
    import asyncio

    from gemini_batch_provider.hooks.connection import read_connection

    calls = []

    async def read():
        calls.append(1)
        await asyncio.sleep(0)
        if len(calls) == 1:
            raise ConnectionError("the secrets backend did not answer")
        return f"connection {len(calls)}"

    async def main():
        first = await asyncio.gather(*(read_connection("c", read) for _ in range(3)), return_exceptions=True)
        again = await asyncio.gather(*(read_connection("c", read) for _ in range(1000)))
        return first, again

    first, again = asyncio.run(main())
    assert [type(e) for e in first] == [ConnectionError] * 3  # three hooks, one read, its error for each
    assert set(again) == {"connection 2"} and len(calls) == 2  # read again after the failure, once for all


# Run in a fresh interpreter: the hook's module is what a triggerer or task loads before any response
# is read; then a thread starts importing what a Vertex AI credentials refresh imports, and is held
# half-way (inside ``requests``) while a response with aiohttp's headers is read, as another trigger
# on the loop would.
RESPONSE_DURING_A_THREADED_IMPORT = """
import importlib.abc, sys, threading
import gemini_batch_provider.hooks.connection
from google.genai._api_client import HttpResponse
from multidict import CIMultiDict, CIMultiDictProxy

reached, release = threading.Event(), threading.Event()

class HoldRequests(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "requests.structures":
            reached.set()
            release.wait(60)
        return None

def refresh_imports():
    import google.auth.transport.requests  # noqa: F401
    reached.set()  # nothing was held: it was loaded already

sys.meta_path.insert(0, HoldRequests())
thread = threading.Thread(target=refresh_imports)
thread.start()
reached.wait(60)
try:
    response = HttpResponse(headers=CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"})))
    print(response.headers)
finally:
    release.set()
    thread.join()
"""


def test_a_response_is_read_while_another_thread_imports_the_vertex_credentials_transport():
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", RESPONSE_DURING_A_THREADED_IMPORT], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "{'Content-Type': 'application/json'}"


@pytest.mark.parametrize("name", ["../../v1beta/files", "batches/x/../../files", "files/abc", "batches/",
                                  "projects/p/locations/l/batchPredictionJobs/1/cancel", 7])
def test_a_name_of_no_jobs_shape_is_refused_before_any_request(monkeypatch, name):
    import asyncio

    from gemini_batch_provider.core.errors import InputError
    from gemini_batch_provider.emulator import free_port

    # Nothing listens there: a request would be a connection error, not the refusal.
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_NOWHERE", json.dumps(
        {"conn_type": "gemini", "password": "k", "extra": {"base_url": f"http://127.0.0.1:{free_port()}"}}))
    hook = GeminiHook("gemini_nowhere")
    for call in (hook.get_job_status, hook.cancel_batch_job, hook.get_batch_job,
                 lambda n: asyncio.run(hook.aget_job_status(n)), lambda n: asyncio.run(hook.acancel_batch_job(n))):
        with pytest.raises(InputError, match="is not a batch job's name: give 'batches/<id>'"):
            call(name)
