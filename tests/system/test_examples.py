"""Every how-to example in this folder, run through real Airflow (``dag.test()``) on the emulator:
the code the docs include (``literalinclude`` between ``[START ...]`` and ``[END ...]``) is code
that runs, and lands what the docs say it lands."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread
from gemini_batch_provider.emulator.tiers import TierConfig
from tests.conftest import API_KEY
from tests.dagbag import test_dag

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
TICKETS = [{"ticket_id": f"T-{i}", "title": f"Ticket {i}",
            "body": f"The export of report {i} stops at 90 percent. It worked last week."} for i in range(5)]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """The examples' ``DATA_DIR`` with their input, and ``gemini_default`` on an emulator whose jobs
    end at once and whose Flex calls take no extra time, so that no example waits a poll interval."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "tickets.jsonl").write_text("".join(json.dumps(t) + "\n" for t in TICKETS))
    monkeypatch.setenv("GEMINI_EXAMPLE_DATA", str(data))
    with EmulatorThread(EmulatorConfig(batch_pending_s=0, batch_running_s=0,
                                       tiers=TierConfig(flex_latency_s=0))) as emu:
        conn = {"conn_type": "gemini", "password": API_KEY, "host": emu.base_url, "extra": {"base_url": emu.base_url}}
        monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))
        yield data, emu


def run_example(name: str, bag: Path):
    """Import ``<name>.py`` as Airflow's DAG processor would (after the environment is set) and run
    its one DAG; the DagRun."""
    from airflow.sdk import DAG

    spec = importlib.util.spec_from_file_location(f"gemini_examples_{name}", HERE / f"{name}.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # as DagBag does: pydantic looks there
    spec.loader.exec_module(module)
    [dag] = [value for value in vars(module).values() if isinstance(value, DAG)]
    assert dag.dag_id == name
    return test_dag(dag, bag)


def rows_of(folder: Path) -> dict[str, dict]:
    [path] = [p for p in folder.glob("*.jsonl") if ".gemini-batch" not in p.name]  # the ledger's files beside it
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by_key = {row["key"]: row for row in rows}
    assert len(by_key) == len(rows)  # each key once
    return by_key


def tickets_landed(folder: Path, path: str) -> dict[str, dict]:
    rows = rows_of(folder)
    assert sorted(rows) == sorted(t["ticket_id"] for t in TICKETS)
    assert {(r["status"], r["path"]) for r in rows.values()} == {("succeeded", path)}
    return rows


def test_every_example_is_run_here():
    assert {p.stem for p in HERE.glob("example_*.py")} == {
        f"example_gemini_{name}" for name in
        ("batch", "taskflow", "online", "granular", "structured", "embeddings", "common_ai")}


def test_the_batch_example_lands_every_ticket_through_one_job(airflow_db, data_dir, tmp_path):
    data, emu = data_dir
    assert run_example("example_gemini_batch", tmp_path / "bag").state == "success"
    tickets_landed(data / "results", "batch")
    assert len(emu.state.store.batches) == 1
    assert len(list((data / "answers").iterdir())) > 0  # the answers kept for the next night


def test_the_taskflow_example_lands_the_bad_row_as_failed_and_reads_the_rows_back(airflow_db, data_dir, tmp_path):
    data, _ = data_dir
    dag_run = run_example("example_gemini_taskflow", tmp_path / "bag")
    assert dag_run.state == "success"
    rows = rows_of(data / "reviews")
    assert {k: (r["status"], r["path"]) for k, r in rows.items()} == {
        "r1": ("succeeded", "batch"), "r2": ("succeeded", "batch"), "r3": ("failed", "refused")}
    report = dag_run.get_task_instance("report").xcom_pull(task_ids="report")
    assert report == {"answered": 2, "refused": ["r3"],
                      "longest": max(len(rows[k]["text"]) for k in ("r1", "r2"))}


def test_the_online_example_lands_each_task_on_its_tier(airflow_db, data_dir, tmp_path):
    data, emu = data_dir
    assert run_example("example_gemini_online", tmp_path / "bag").state == "success"
    assert {r["usage"]["service_tier"] for r in tickets_landed(data / "urgent", "online").values()} == {"standard"}
    assert {r["usage"]["service_tier"] for r in tickets_landed(data / "flex", "flex").values()} == {"flex"}
    tickets_landed(data / "auto", "online")  # 5 rows: under online_threshold
    assert not emu.state.store.batches


def test_the_granular_example_submits_waits_and_lands(airflow_db, data_dir, tmp_path):
    data, emu = data_dir
    dag_run = run_example("example_gemini_granular", tmp_path / "bag")
    assert dag_run.state == "success"
    tickets_landed(data / "results", "batch")
    assert dag_run.get_task_instance("submit").xcom_pull(task_ids="submit") == [
        f"batches/{job}" for job in emu.state.store.batches]


def test_the_structured_example_lands_validated_answers(airflow_db, data_dir, tmp_path):
    from airflow.models.renderedtifields import RenderedTaskInstanceFields

    data, _ = data_dir
    dag_run = run_example("example_gemini_structured", tmp_path / "bag")
    assert dag_run.state == "success"
    rows = tickets_landed(data / "triage", "batch")
    assert all(r["parsed"]["severity"] in {"low", "medium", "high"} for r in rows.values())
    # Jinja's pass (params, the raw block) as Airflow kept it; each row's str.format then undoubles the braces
    rendered = RenderedTaskInstanceFields.get_templated_fields(dag_run.get_task_instance("triage"))
    template = rendered["prompt_template"]
    assert template == 'Answer as {{"summary": "...", "severity": "..."}} for the on-call engineer: {body}'
    assert template.format(body="b") == 'Answer as {"summary": "...", "severity": "..."} for the on-call engineer: b'


def test_the_embeddings_example_lands_a_vector_per_ticket_both_ways(airflow_db, data_dir, tmp_path):
    data, emu = data_dir
    assert run_example("example_gemini_embeddings", tmp_path / "bag").state == "success"
    for folder, path in (("vectors", "batch"), ("vectors-now", "online")):
        assert {len(r["embedding"]) for r in tickets_landed(data / folder, path).values()} == {768}
    assert len(emu.state.store.batches) == 1


def test_the_common_ai_example_lands_each_prompt(airflow_db, data_dir, tmp_path):
    pytest.importorskip("airflow.providers.common.ai")
    data, emu = data_dir
    dag_run = run_example("example_gemini_common_ai", tmp_path / "bag")
    assert dag_run.state == "success"
    manifest = dag_run.get_task_instance("prompts").xcom_pull(task_ids="prompts")
    with open(manifest["result_uri"].removeprefix("file://")) as lines:
        rows = [json.loads(line) for line in lines]
    assert sorted(r["index"] for r in rows) == [0, 1] and all(r["status"] == "success" for r in rows)
    assert manifest["result_uri"].removeprefix("file://").startswith(str(data / "llm-batch"))
    assert len(emu.state.store.batches) == 1
