"""Gemini through Airflow's common.ai batch layer (``@task.llm_batch``, ``LLMBatchOperator``): the real
common.ai provider picks ``GeminiBatchAdapter`` by its entry point, and ``dag.test()`` runs it against
the emulator through the real SDK."""

from __future__ import annotations

import json
import urllib.parse

import pendulum
import pytest
from packaging.version import Version

pytest.importorskip("airflow.providers.common.ai")

from airflow.providers.common.ai.operators.llm_batch import LLMBatchOperator
from airflow.sdk import DAG, task
from pydantic import BaseModel

from airflow import __version__ as airflow_version
from gemini_batch_provider.common_ai import GeminiBatchAdapter
from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread
from gemini_batch_provider.operators.batch import GeminiBatchOperator
from tests.conftest import API_KEY, RECORDS
from tests.dagbag import test_dag

pytestmark = pytest.mark.integration

MODEL = "gemini:gemini-3-flash-preview"
SYSTEM = "Summarize the document in one sentence."
PROMPTS = [r["text"] for r in RECORDS]


@pytest.fixture
def emulator(monkeypatch):
    """An emulator whose jobs end as soon as they are made (common.ai polls every 30 s at the
    fastest), and ``gemini_default`` pointing at it by its host, the base URL common.ai hands the
    adapter and the one this provider's own operators read when the ``base_url`` extra is empty."""
    with EmulatorThread(EmulatorConfig(batch_pending_s=0, batch_running_s=0)) as emu:
        conn = {"conn_type": "gemini", "password": API_KEY, "host": emu.base_url}
        monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))
        yield emu


class Summary(BaseModel):
    summary: str
    words: int


def _run(tmp_path, build):
    """``build()`` inside a DAG, run through ``dag.test()``; the DagRun and its landed rows by index."""
    with DAG(dag_id="ai_batch", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        build()
    dag_run = test_dag(dag, tmp_path / "no-dags")
    [ti] = dag_run.get_task_instances()
    manifest = dag_run.get_task_instance(ti.task_id).xcom_pull(task_ids=ti.task_id)
    rows = {}
    if manifest:
        with open(manifest["result_uri"].removeprefix("file://")) as lines:
            rows = {row["index"]: row for row in map(json.loads, lines)}
    return dag_run, rows


def _decorated(tmp_path):
    """A DAG body of one ``@task.llm_batch`` task, ``prompts``, over ``PROMPTS``."""
    def build():
        @task.llm_batch(llm_conn_id="gemini_default", model_id=MODEL, result_path=str(tmp_path / "ai"),
                        system_prompt=SYSTEM, poll_interval=30)
        def prompts():
            return PROMPTS

        prompts()

    return build


def test_the_decorator_lands_every_prompt_as_gemini_batch_does(airflow_db, emulator, tmp_path):
    dag_run, rows = _run(tmp_path, _decorated(tmp_path))
    assert dag_run.state == "success"
    assert sorted(rows) == list(range(len(PROMPTS))) and all(r["status"] == "success" for r in rows.values())
    assert len(emulator.state.store.batches) == 1
    [job] = emulator.state.store.batches.values()
    assert job.resource["displayName"].startswith("common-ai:")  # what an orphan is found by
    # The same rows through this provider's own operator: the same answers.
    out = tmp_path / "own.jsonl"
    with DAG(dag_id="own_batch", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        GeminiBatchOperator(task_id="own", records=[{"text": p} for p in PROMPTS], prompt_template="{text}",
                            system_instruction=SYSTEM, model=MODEL.split(":", 1)[1], output_path=str(out),
                            poll_interval=0.2)
    assert test_dag(dag, tmp_path / "no-dags-own").state == "success"
    own = {int(row["key"]): row["text"] for row in map(json.loads, out.read_text().splitlines())}
    assert {i: r["output"] for i, r in rows.items()} == own



@pytest.mark.skipif(Version(airflow_version) < Version("3.1"), reason="plugin pages need Airflow 3.1+")
def test_the_decorators_batch_is_on_the_gemini_batches_page_with_its_rows_and_cost(airflow_db, emulator, tmp_path):
    """The adapter records its job when it submits, and its results' summary once common.ai read
    them (the task's return value is common.ai's manifest): the page shows both, joined."""
    from airflow.api_fastapi.app import create_auth_manager, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from gemini_batch_provider.core.cost import cost_usd, price_of
    from gemini_batch_provider.plugins.app import app

    dag_run, rows = _run(tmp_path, _decorated(tmp_path))
    assert dag_run.state == "success" and len(rows) == len(PROMPTS)
    create_auth_manager()
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="someone", role="admin"))
    query = urllib.parse.urlencode({"dag_id": "ai_batch", "run_id": dag_run.run_id})
    answer = TestClient(app).get(f"/api/batches?{query}", headers={"Authorization": f"Bearer {token}"}).json()
    [row] = answer["rows"]
    [job] = emulator.state.store.batches
    assert (row["task_id"], row["conn_id"], row["model"], row["withheld"]) == (
        "prompts", "gemini_default", "gemini-3-flash-preview", None)
    assert [j["name"] for j in row["jobs"]] == [f"batches/{job}"] and row["link"] == "https://aistudio.google.com/batches"
    assert row["rows"] == len(PROMPTS) and row["counts"]["succeeded"] == len(PROMPTS) and not row["in_flight"]
    price = price_of("gemini-3-flash-preview")
    usages = [{"prompt_token_count": r["usage"]["input_tokens"], "candidates_token_count": r["usage"]["output_tokens"]}
              for r in rows.values()]  # common.ai's own rows' usage
    paid = sum(cost_usd(usage, price, batch=True) for usage in usages)
    assert row["cost_usd"] == pytest.approx(paid, abs=1e-6) and row["cost_usd"] > 0


def test_a_structured_output_type_lands_validated_values(airflow_db, emulator, tmp_path):
    def build():
        LLMBatchOperator(task_id="classify", requests=PROMPTS, llm_conn_id="gemini_default", model_id=MODEL,
                         result_path=str(tmp_path / "ai"), output_type=Summary, poll_interval=30)

    dag_run, rows = _run(tmp_path, build)
    assert dag_run.state == "success"
    for index, row in rows.items():
        assert row["status"] == "success" and set(row["output"]) == {"summary", "words"}
        assert row["output"]["summary"] in PROMPTS[index]
    [job] = emulator.state.store.batches.values()
    assert job.resource["model"].endswith("gemini-3-flash-preview")


class LoseWorkerAfterSubmit(LLMBatchOperator):
    """Its first try submits, then its worker is lost before the wait."""

    def _wait(self, context, **kwargs):
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost after submitting")
        return super()._wait(context, **kwargs)


class LoseSubmitAnswer(GeminiBatchAdapter):
    """Creates the job, then loses the API's answer once: common.ai has the intent but no job id."""

    lost = False

    def submit(self, *args, **kwargs):
        result = super().submit(*args, **kwargs)
        if not LoseSubmitAnswer.lost:
            LoseSubmitAnswer.lost = True
            raise ConnectionError("the answer to the create call was lost")
        return result


class WithLostAnswer(LLMBatchOperator):
    def _build_adapter(self, conn=None):
        conn = conn or self._connection()
        return "gemini", LoseSubmitAnswer(api_key=conn.password, base_url=conn.host)


@pytest.mark.parametrize("operator", [LoseWorkerAfterSubmit, WithLostAnswer])
def test_a_retry_reattaches_to_its_job_instead_of_paying_twice(airflow_db, emulator, tmp_path, operator):
    LoseSubmitAnswer.lost = False  # this test's own first answer is the one lost

    def build():
        operator(task_id="t", requests=PROMPTS, llm_conn_id="gemini_default", model_id=MODEL,
                 result_path=str(tmp_path / "ai"), poll_interval=30, retries=1, retry_delay=0)

    dag_run, rows = _run(tmp_path, build)
    assert dag_run.state == "success" and dag_run.get_task_instance("t").try_number == 2
    assert len(rows) == len(PROMPTS)
    assert len(emulator.state.store.batches) == 1  # found again (by its record, or as an orphan by its name)


def test_a_failed_job_fails_the_task(airflow_db, emulator, tmp_path):
    emulator.configure("batches", outcome="fail")

    def build():
        LLMBatchOperator(task_id="t", requests=PROMPTS, llm_conn_id="gemini_default", model_id=MODEL,
                         result_path=str(tmp_path / "ai"), poll_interval=30)

    dag_run, _ = _run(tmp_path, build)
    assert dag_run.state == "failed"


def test_requests_the_api_would_refuse_are_refused_before_anything_is_sent(emulator):
    from airflow.providers.common.ai.batch.output_schema import build_output_spec
    from airflow.providers.common.ai.exceptions import LLMBatchInputError, LLMBatchModelMismatchError

    adapter = GeminiBatchAdapter(api_key=API_KEY, base_url=emulator.base_url)
    check = {"model": "gemini-3-flash-preview", "output_spec": build_output_spec(str), "idempotency_key": "k" * 16}
    with pytest.raises(LLMBatchModelMismatchError, match=r"request 1 names model 'gemini:gemini-2\.5-flash'"):
        adapter.validate_requests([{"prompt": "a"}, {"prompt": "b", "model": "gemini:gemini-2.5-flash"}], **check)
    with pytest.raises(LLMBatchInputError, match="row 1"):  # an empty prompt, named by its place
        adapter.validate_requests([{"prompt": "a"}, {"prompt": "  "}], **check)
    with pytest.raises(LLMBatchInputError, match="generation_config"):
        adapter.validate_requests([{"prompt": "a"}], request_params={"temprature": 0.2}, **check)
    assert emulator.state.store.files == {} and emulator.state.store.batches == {}


def test_a_damaged_output_line_is_skipped_and_the_others_land(tmp_path):
    good = {"key": "k-1", "response": {"candidates": [{"content": {"parts": [{"text": "An answer."}]},
                                                       "finishReason": "STOP"}]}}
    (tmp_path / "output.jsonl").write_bytes(b'{"key": "k-0", "resp\n[1, 2]\n\n' + json.dumps(good).encode() + b"\n")
    [item] = GeminiBatchAdapter._items(tmp_path, "batches/damaged")
    assert (item.index, item.provider_status, item.raw["text"]) == (1, "success", "An answer.")
    assert not tmp_path.exists()  # the downloaded file goes once read
