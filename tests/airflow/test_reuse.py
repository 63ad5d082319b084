"""Answer reuse through real Airflow (``dag.test()``) against the emulator: a night whose requests
were answered before sends only what changed, and the emulator's own counts show what reached it."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pendulum
import pytest

from tests.conftest import RECORDS, wait_for_batch
from tests.dagbag import test_dag

NIGHT_1, NIGHT_2 = pendulum.datetime(2026, 3, 1, tz="UTC"), pendulum.datetime(2026, 3, 2, tz="UTC")


def _requests_sent(emulator) -> int:
    """Requests that reached the emulator: in batch jobs, and online calls answered."""
    batched = sum(int(b.resource["batchStats"]["requestCount"]) for b in emulator.state.store.batches.values())
    return batched + emulator.state.counters["ok"]


def _night(tmp_path, records, when, *, operator="batch", **options):
    """One scheduled night of a one-task DAG (its own id, so its own run), on ``records``."""
    from airflow.sdk import DAG

    from gemini_batch_provider.operators.batch import GeminiBatchOperator
    from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator

    source = tmp_path / f"in-{uuid.uuid4().hex[:6]}.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    settings = {"input_path": str(source), "output_path": str(tmp_path / "results.jsonl"), "key_field": "id",
                "prompt_template": "Summarize: {text}", **options}
    with DAG(dag_id=f"reuse_{uuid.uuid4().hex[:8]}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        if operator == "batch":
            GeminiBatchOperator(task_id="run", poll_interval=0.2, **settings)
        else:
            GeminiConcurrentGenerateOperator(task_id="run", **settings)
    folder = tmp_path / f"bag-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    dag_run = test_dag(dag, folder, logical_date=when, run_after=when)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    return dag_run, rows, dag_run.get_task_instance("run").xcom_pull(task_ids="run")


@pytest.mark.parametrize("operator", ["batch", "online"])
def test_an_unchanged_night_2_sends_nothing_and_lands_every_row_once(airflow_db, emulator, gemini_conn, tmp_path,
                                                                       operator):
    run1, rows1, summary1 = _night(tmp_path, RECORDS, NIGHT_1, operator=operator)
    assert run1.state == "success" and _requests_sent(emulator) == len(RECORDS) == 7
    run2, rows2, summary2 = _night(tmp_path, RECORDS, NIGHT_2, operator=operator)
    assert run2.state == "success"
    assert _requests_sent(emulator) == 7  # nothing more reached the API
    assert sorted(r["key"] for r in rows2) == sorted(r["id"] for r in RECORDS)
    assert {r["path"] for r in rows2} == {"reused"} and {r["reused_from"] for r in rows2} == {operator}
    by_key = {r["key"]: r for r in rows1}
    for row in rows2:  # the earlier answer, its answer time and usage kept
        earlier = by_key[row["key"]]
        assert (row["text"], row["answered_at"], row["usage"], row["request_digest"]) == (
            earlier["text"], earlier["answered_at"], earlier["usage"], earlier["request_digest"])
    assert summary2["rows_by_path"] == {"reused": 7} and summary2["cost_usd"] == 0
    assert summary2["saved_cost_usd"] == pytest.approx(summary1["cost_usd"]) and summary1["cost_usd"] > 0


def test_a_changed_row_alone_is_sent_and_a_changed_prompt_or_model_sends_everything(airflow_db, emulator,
                                                                                     gemini_conn, tmp_path, capfd):
    run1, _, summary1 = _night(tmp_path, RECORDS, NIGHT_1)
    assert run1.state == "success"
    capfd.readouterr()
    changed = [*RECORDS[:-1], {**RECORDS[-1], "text": "This document changed since last night."}]
    run2, rows2, summary2 = _night(tmp_path, changed, NIGHT_2)
    assert run2.state == "success" and _requests_sent(emulator) == 7 + 1
    # Night 1's ledger is replaced, and the log names the run that wrote it and its job.
    told = "".join(capfd.readouterr())
    assert f"was written by airflow:{run1.dag_id}:run:{run1.run_id}:-1, whose jobs {summary1['batch_jobs']}" in told
    assert summary2["rows_by_path"] == {"reused": 6, "batch": 1}
    assert [r["key"] for r in rows2 if r["path"] == "batch"] == [RECORDS[-1]["id"]]
    assert "changed since last night" in next(r["text"] for r in rows2 if r["path"] == "batch")

    night_3 = NIGHT_2.add(days=1)
    run3, rows3, _ = _night(tmp_path, changed, night_3, system_instruction="Answer in French.")
    assert run3.state == "success" and _requests_sent(emulator) == 8 + 7
    assert {r["path"] for r in rows3} == {"batch"}
    run4, rows4, _ = _night(tmp_path, changed, night_3.add(days=1), model="gemini-3-flash-preview")
    assert run4.state == "success" and _requests_sent(emulator) == 15 + 7
    assert {r["path"] for r in rows4} == {"batch"} and len(rows4) == 7


def test_a_rerun_of_the_same_date_sends_nothing_unless_reuse_is_off(airflow_db, emulator, gemini_conn, tmp_path):
    assert _night(tmp_path, RECORDS, NIGHT_1)[0].state == "success"
    run2, rows2, _ = _night(tmp_path, RECORDS, NIGHT_1)  # another run of the same date
    assert run2.state == "success" and _requests_sent(emulator) == 7
    assert {r["path"] for r in rows2} == {"reused"} and len(rows2) == 7
    run3, rows3, summary3 = _night(tmp_path, RECORDS, NIGHT_1, reuse=False)  # a fresh sample
    assert run3.state == "success" and _requests_sent(emulator) == 14
    assert {r["path"] for r in rows3} == {"batch"} and summary3["saved_cost_usd"] == 0


def test_only_succeeded_answers_younger_than_the_maximum_age_are_reused(airflow_db, emulator, gemini_conn, tmp_path):
    assert _night(tmp_path, RECORDS, NIGHT_1)[0].state == "success"
    results = tmp_path / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    rows[0] = {**rows[0], "status": "failed", "error": {"code": 500, "message": "x", "status": "INTERNAL"}}
    rows[1] = {**rows[1], "status": "invalid_output"}
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run2, rows2, _ = _night(tmp_path, RECORDS, NIGHT_2)
    assert run2.state == "success" and _requests_sent(emulator) == 7 + 2
    assert sorted(r["key"] for r in rows2 if r["path"] == "batch") == sorted([rows[0]["key"], rows[1]["key"]])

    rows2[2] = {**rows2[2], "answered_at": "2025-01-01T00:00:00+00:00"}  # over a day old
    results.write_text("".join(json.dumps(r) + "\n" for r in rows2))
    run3, rows3, _ = _night(tmp_path, RECORDS, NIGHT_2.add(days=1), reuse_max_age=timedelta(days=1))
    assert run3.state == "success" and _requests_sent(emulator) == 9 + 1
    assert [r["key"] for r in rows3 if r["path"] == "batch"] == [rows2[2]["key"]]


def test_an_answer_store_shares_answers_between_dags_with_other_outputs(airflow_db, emulator, gemini_conn, tmp_path):
    store = tmp_path / "answers"
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    assert _night(first, RECORDS, NIGHT_1, answer_store=str(store))[0].state == "success"
    parts = sorted(store.iterdir())
    assert len(parts) == 1 and parts[0].name.startswith("answers-") and parts[0].suffix == ".jsonl"
    assert len(parts[0].read_text().splitlines()) == 7
    run2, rows2, summary2 = _night(second, RECORDS, NIGHT_1, operator="online", answer_store=str(store))
    assert run2.state == "success" and _requests_sent(emulator) == 7  # the other DAG's answers
    assert summary2["rows_by_path"] == {"reused": 7} and {r["reused_from"] for r in rows2} == {"batch"}
    assert len(list(store.iterdir())) == 1  # nothing new to add


def _stored_texts(store) -> dict[str, list[str]]:
    """What a reader of the answer store at ``store`` finds: each key's answers (one per request)."""
    import logging

    from gemini_batch_provider.core.answers import AnswerIndex, AnswerStore
    from gemini_batch_provider.storage import Location

    found: dict[str, list[str]] = {}
    with AnswerIndex() as index:
        AnswerStore(Location(str(store), lambda: None)).read_into(index, store.parent, logging.getLogger(__name__))
        for row in map(json.loads, index.rows()):
            found.setdefault(row["key"], []).append(row["text"])
    return found


@pytest.mark.parametrize("kill_at", [r"answers-.*\.jsonl", r"results\.jsonl"],
                         ids=["adding its answers to the store", "publishing the results"])
def test_a_killed_landing_leaves_the_store_readable_and_the_retry_lands_every_row_once(
        airflow_db, emulator, gemini_conn, tmp_path, kill_at):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.airflow.killed_landing import night_dag

    store = tmp_path / "answers"
    assert _night(tmp_path, RECORDS, NIGHT_1, answer_store=str(store))[0].state == "success"
    night_1_results = (tmp_path / "results.jsonl").read_bytes()
    changed = [*RECORDS[:-1], {**RECORDS[-1], "text": "This document changed since last night."}]
    source = tmp_path / "night-2.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in changed))
    settings = {"input_path": str(source), "output_path": str(tmp_path / "results.jsonl"), "key_field": "id",
                "prompt_template": "Summarize: {text}", "answer_store": str(store)}
    dag_id = f"killed_{uuid.uuid4().hex[:8]}"
    (tmp_path / "bag-killed").mkdir()
    spec = {"dag_id": dag_id, "settings": settings, "date": NIGHT_2.isoformat(), "bag": str(tmp_path / "bag-killed"),
            "kill_at": kill_at}
    worker = subprocess.run([sys.executable, "-m", "tests.airflow.killed_landing", json.dumps(spec)],
                            cwd=Path(__file__).parents[2], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=300, check=False)
    assert worker.returncode == -signal.SIGKILL, worker.stderr[-3000:]
    assert _requests_sent(emulator) == 7 + 1  # the changed row was sent, and answered

    # The store reads whole: night 1's answers, and the new one only once its part was put whole.
    answers = _stored_texts(store)
    stored_first = kill_at.startswith("results")
    assert sorted(answers) == sorted(r["id"] for r in RECORDS)
    assert {key: len(texts) for key, texts in answers.items()} == {
        r["id"]: 2 if stored_first and r is RECORDS[-1] else 1 for r in RECORDS}
    assert any("changed since last night" in text for text in answers[RECORDS[-1]["id"]]) is stored_first
    assert [p.name.endswith(".part") for p in store.iterdir()].count(True) == (0 if stored_first else 1)
    assert (tmp_path / "results.jsonl").read_bytes() == night_1_results  # never half a file

    # Airflow's retry of the lost try: the same DAG run (the same task instance) runs again.
    (tmp_path / "bag-retry").mkdir()
    retry = test_dag(night_dag(dag_id, settings), tmp_path / "bag-retry", logical_date=NIGHT_2, run_after=NIGHT_2)
    assert retry.state == "success" and _requests_sent(emulator) == 7 + 1  # the recorded job landed, none sent again
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)
    assert [r["key"] for r in rows if r["path"] == "batch"] == [RECORDS[-1]["id"]]
    assert any("changed since last night" in text for text in _stored_texts(store)[RECORDS[-1]["id"]])


def test_a_bad_row_still_fails_before_anything_is_sent_with_reuse_on(airflow_db, emulator, gemini_conn, tmp_path):
    assert _night(tmp_path, RECORDS, NIGHT_1)[0].state == "success"
    run2, _, _ = _night(tmp_path, [*RECORDS, {"id": "bad"}], NIGHT_2)
    assert run2.state == "failed" and _requests_sent(emulator) == 7


def test_a_run_started_while_the_first_runs_makes_no_new_job_and_both_land_the_same_rows(airflow_db, emulator,
                                                                                         gemini_conn, client,
                                                                                         tmp_path, capfd):
    from airflow.sdk import DAG

    from gemini_batch_provider.operators.results import GeminiBatchResultsOperator
    from gemini_batch_provider.operators.submit import GeminiSubmitBatchOperator

    source, output = tmp_path / "in.jsonl", tmp_path / "results.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    common = {"input_path": str(source), "output_path": str(output), "key_field": "id",
              "prompt_template": "Summarize: {text}", "max_requests_per_job": 4}

    def run(operator, task_id, **options):
        with DAG(dag_id=f"join_{uuid.uuid4().hex[:8]}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
            operator(task_id=task_id, **common, **options)
        folder = tmp_path / f"bag-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        dag_run = test_dag(dag, folder, logical_date=NIGHT_1, run_after=NIGHT_1)
        return dag_run, dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id)

    emulator.configure("batches", outcome="stall")  # the first run's jobs run on
    first, first_jobs = run(GeminiSubmitBatchOperator, "submit")
    assert first.state == "success" and len(first_jobs) == 2
    second, second_jobs = run(GeminiSubmitBatchOperator, "submit")  # another run of the same date, meanwhile
    assert second.state == "success" and second_jobs == first_jobs
    assert len(emulator.state.store.batches) == 2 and emulator.state.counters["uploads"] == 2
    told = "".join(capfd.readouterr())  # the task's log, as dag.test() prints it
    assert told.count("waits on them too instead of creating new ones") == 1

    runner = emulator.state.batches

    def finish():  # the stalled jobs run again from the start, as jobs that end (their first run stopped first)
        for batch in emulator.state.store.batches.values():
            runner.tasks.stop(batch.id)
            batch.outcome = "succeed"
            runner._start(batch)

    emulator.call(finish)
    for name in first_jobs:
        assert wait_for_batch(client, name)[0].state.value == "JOB_STATE_SUCCEEDED"
    landed = []
    for jobs in (first_jobs, second_jobs):
        dag_run, _ = run(GeminiBatchResultsOperator, "land", job_names=jobs)
        assert dag_run.state == "success"
        landed.append([{**row, "answered_at": None} for row in map(json.loads, output.read_text().splitlines())])
    assert landed[0] == landed[1] and sorted(r["key"] for r in landed[0]) == sorted(r["id"] for r in RECORDS)
    assert len(emulator.state.store.batches) == 2


def test_a_run_that_sends_the_same_rows_but_reuses_other_answers_does_not_join_the_first(emulator, gemini_conn,
                                                                                         tmp_path, caplog):
    # core.submit through the hook's real client: three runs send the same rows while the first
    # one's job runs; the second reuses the same answers as the first, the third other ones.
    import logging

    from gemini_batch_provider.core.ledger import LedgerStore
    from gemini_batch_provider.core.plan import BatchPlan, RunInput, request_spec
    from gemini_batch_provider.core.submit import Submission, submit
    from gemini_batch_provider.hooks.connection import backend_for
    from gemini_batch_provider.hooks.gemini import GeminiHook
    from gemini_batch_provider.storage import Location

    emulator.configure("batches", outcome="stall")  # the first run's job runs on
    out = tmp_path / "out.jsonl"
    plan = BatchPlan(model="gemini-2.5-flash", spec=request_spec("Summarize: {text}", key_field="id"),
                     output_path=str(out), records=tuple(RECORDS))
    store = LedgerStore(*(Location(f"{out}.{name}", lambda: None) for name in ("ledger", "keys", "reused")))
    reused = tmp_path / "reused.jsonl"
    reused.write_text(json.dumps({"key": "doc-x", "path": "reused", "request_digest": "0" * 64}) + "\n")
    hook, log = GeminiHook(), logging.getLogger("reuse-join-test")

    def run(identity, reused_fingerprint):
        how = Submission(identity=identity, reused_rows_file=reused, reused_rows=1,
                         reused_fingerprint=reused_fingerprint)
        return submit(plan, RunInput(plan.records, plan.spec), backend_for(hook, False, identity), store, how,
                      log).job_names

    with caplog.at_level(logging.INFO, logger="reuse-join-test"):
        first = run("run-1", "answers-a")
        assert run("run-2", "answers-a") == first and "run-2" not in store.load().identity  # joined run 1's job
        third = run("run-3", "answers-b")  # the same rows to send, other answers reused: another input
    assert third != first and len(emulator.state.store.batches) == 2
    assert caplog.text.count("waits on them too") == 1 and f"run-1, whose jobs {first}" in caplog.text
