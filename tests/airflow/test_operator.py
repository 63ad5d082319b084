"""GeminiBatchOperator run by Airflow itself (``dag.test()``, triggers run in line) against the emulator."""

from __future__ import annotations

import json
import logging

import pytest

from gemini_batch_provider.operators.task import scratch_folder, task_scratch
from tests.conftest import API_KEY, RECORDS, run_dag, vertex_conn
from tests.dagbag import DagBag

pytestmark = pytest.mark.integration

NONE = {"succeeded": 0, "failed": 0, "invalid_output": 0, "missing": 0, "expired": 0, "cancelled": 0}



@pytest.mark.parametrize("dag_id", ["gemini_op_deferrable", "gemini_op_polling"])
def test_lands_one_row_per_record(airflow_db, emulator, gemini_conn, tmp_path, dag_id):
    dag_run, rows = run_dag(tmp_path, dag_id, RECORDS)
    assert dag_run.state == "success"
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS]
    prompts = {r["id"]: f"Summarize: {r['text']}" for r in RECORDS}
    assert all(r["status"] == "succeeded" and r["text"] and r["text"] in prompts[r["key"]] for r in rows)
    summary = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch")
    assert summary["rows"] == 7 and summary["counts"] == {**NONE, "succeeded": 7}
    assert summary["path"] == "batch" and summary["rows_by_path"] == {"batch": 7}
    assert summary["usage"]["total_token_count"] == sum(r["usage"]["total_token_count"] for r in rows)
    # gemini-2.5-flash at the batch price (half of $0.30 in / $2.50 out per million, thinking billed as
    # output), after the deferral too; the estimate counts the thinking and is within 2x of it
    usage = summary["usage"]
    output = usage["candidates_token_count"] + usage["thoughts_token_count"]
    assert usage["thoughts_token_count"] > usage["candidates_token_count"]  # 2.5 Flash thinks by default
    assert summary["cost_usd"] == pytest.approx((usage["prompt_token_count"] * 0.30 + output * 2.50) / 2e6, abs=1e-6)
    assert summary["cost_usd"] / 2 < summary["estimated_cost_usd"] < 2 * summary["cost_usd"]
    [job] = summary["batch_jobs"]
    job_id = job.removeprefix("batches/")
    assert emulator.state.store.batches[job_id].resource["displayName"].startswith(
        f"airflow:{dag_id}:batch:{dag_run.run_id}:-1 1/1 ")
    # The uploaded input file was deleted; only the job's output file remains.
    assert list(emulator.state.store.files) == [f"batch-{job_id}"]
    assert API_KEY not in json.dumps(summary)
    # Nothing the tries built or downloaded is left in the temporary folder.
    assert not task_scratch(f"airflow:{dag_id}:batch:{dag_run.run_id}:-1").exists()


def test_what_a_killed_try_downloaded_is_removed_by_the_next_try():
    identity = "airflow:d:t:manual__killed:-1"
    # A try killed while landing: its output download stays, as no finally ran.
    killed = task_scratch(identity) / "tmp-killed" / "gemini-output-x" / "output-00000.jsonl"
    killed.parent.mkdir(parents=True)
    killed.write_bytes(b'{"key": "a", "response": {}}\n' * 1000)
    with scratch_folder(identity) as folder:
        assert not killed.exists() and list(task_scratch(identity).iterdir()) == [folder]
    # The try is done with its folder: it goes, and the task instance's with it.
    assert not task_scratch(identity).exists()


def test_bad_input_fails_before_anything_is_uploaded(airflow_db, emulator, gemini_conn, tmp_path):
    dag_run, rows = run_dag(tmp_path, "gemini_op_deferrable", [*RECORDS, {"id": "doc-0", "text": "a duplicate"}])
    assert dag_run.state == "failed"
    assert emulator.state.store.files == {} and emulator.state.store.batches == {}
    assert rows == [] and list(tmp_path.glob("results.jsonl*")) == []


@pytest.mark.parametrize(("outcome", "status"), [("fail", "missing"), ("expire", "expired")])
def test_a_job_that_did_not_succeed_lands_every_row_then_fails_the_task(airflow_db, emulator, gemini_conn, tmp_path,
                                                                       outcome, status):
    emulator.configure("batches", outcome=outcome)
    dag_run, rows = run_dag(tmp_path, "gemini_op_deferrable", RECORDS)
    assert dag_run.state == "failed"
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS]
    [job] = emulator.state.store.batches.values()
    assert all(r["status"] == status and f"batches/{job.id} ended" in r["error"]["message"] for r in rows)



def test_a_thinking_model_is_billed_its_thoughts_at_the_output_price_and_estimated_within_2x(
        airflow_db, emulator, gemini_conn, tmp_path):
    dag_run, rows = run_dag(tmp_path, "gemini_op_thinking", RECORDS)
    assert dag_run.state == "success"
    prompts = {r["id"]: f"Summarize: {r['text']}" for r in RECORDS}
    for row in rows:  # the answer without its thoughts; the thoughts, asked for, in a field of their own
        assert row["text"] in prompts[row["key"]] and "Thinking about" not in row["text"]
        assert row["thoughts"].startswith("Thinking about") and 0 < row["usage"]["thoughts_token_count"] <= 1024
    summary = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch")
    usage = summary["usage"]
    # gemini-3-flash-preview, batch: half of $0.50 in and $3.00 out (thinking included) per million
    output = usage["candidates_token_count"] + usage["thoughts_token_count"]
    assert summary["cost_usd"] == pytest.approx((usage["prompt_token_count"] * 0.50 + output * 3.00) / 2e6, abs=1e-6)
    assert summary["cost_usd"] / 2 < summary["estimated_cost_usd"] < 2 * summary["cost_usd"]

def test_online_operator_lands_the_same_schema_and_summary(airflow_db, emulator, gemini_conn, tmp_path):
    emulator.state.faults.config.error_503_rate = 0.3  # some calls fail and are retried
    dag_run, rows = run_dag(tmp_path, "gemini_op_online", RECORDS)
    assert dag_run.state == "success"
    assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)
    assert all(set(r) == {"key", "status", "path", "text", "parsed", "embedding", "usage", "error", "finish_reason",
                          "thoughts", "images", "request_digest", "answered_at", "reused_from"} for r in rows)
    assert len({r["request_digest"] for r in rows}) == 7 and all(len(r["request_digest"]) == 64 for r in rows)
    assert all(r["status"] == "succeeded" and r["path"] == "online" and r["finish_reason"] == "STOP" for r in rows)
    summary = dag_run.get_task_instance("online").xcom_pull(task_ids="online")
    assert summary["path"] == "online" and summary["batch_jobs"] == []
    assert summary["counts"] == {**NONE, "succeeded": 7}
    assert emulator.state.counters["503"] > 0 and emulator.state.store.batches == {}


@pytest.mark.parametrize(("dag_id", "task_id"), [("gemini_op_schema", "batch"), ("gemini_op_online_schema", "online")])
def test_structured_output_is_parsed_and_what_does_not_match_is_invalid_output(airflow_db, emulator, gemini_conn,
                                                                               tmp_path, dag_id, task_id):
    # The emulator answers with the sentence that sums the text up best: one over the 40 characters
    # the schema allows for this record.
    long = {"id": "long", "text": "This record has a first sentence that is far longer than forty characters."}
    dag_run, rows = run_dag(tmp_path, dag_id, [*RECORDS, long])
    assert dag_run.state == "success"
    by_key = {r["key"]: r for r in rows}
    assert len(rows) == len(by_key) == 8
    for record in RECORDS:
        row = by_key[record["id"]]
        assert row["status"] == "succeeded" and row["parsed"] == json.loads(row["text"])
        assert row["parsed"]["summary"] in f"Summarize: {record['text']}" and isinstance(row["parsed"]["words"], int)
    bad = by_key["long"]
    assert bad["status"] == "invalid_output" and bad["parsed"] is None and json.loads(bad["text"])["summary"]
    assert "does not match response_schema" in bad["error"]["message"] and "summary" in bad["error"]["message"]
    summary = dag_run.get_task_instance(task_id).xcom_pull(task_ids=task_id)
    assert summary["counts"] == {**NONE, "succeeded": 7, "invalid_output": 1}


def test_auto_mode_routes_small_sets_online_and_large_ones_to_batch(airflow_db, emulator, gemini_conn, tmp_path):
    small_run, small_rows = run_dag(tmp_path / "small", "gemini_op_auto", RECORDS[:5])
    assert small_run.state == "success" and {r["path"] for r in small_rows} == {"online"}
    assert emulator.state.store.batches == {}
    large_run, large_rows = run_dag(tmp_path / "large", "gemini_op_auto", RECORDS)
    assert large_run.state == "success" and {r["path"] for r in large_rows} == {"batch"}
    assert len(emulator.state.store.batches) == 1


def test_deadline_cancels_the_batch_and_finishes_every_row_online(airflow_db, emulator, gemini_conn, tmp_path):
    emulator.configure("batches", pending_s=60)  # the batch would not finish before the 1 s deadline
    dag_run, rows = run_dag(tmp_path, "gemini_op_deadline", RECORDS)
    assert dag_run.state == "success"
    [batch] = emulator.state.store.batches.values()
    assert batch.resource["state"] == "BATCH_STATE_CANCELLED"
    assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)  # each row exactly once
    assert all(r["status"] == "succeeded" and r["path"] == "online" for r in rows)
    summary = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch")
    assert summary["path"] == "batch+online" and summary["rows_by_path"] == {"online": 7}
    assert sum(summary["counts"].values()) == summary["rows"] == 7


# Live output lines carry gRPC canonical codes and no status: UNAVAILABLE (14) and RESOURCE_EXHAUSTED
# (8) are worth running again, INVALID_ARGUMENT (3) is not, and neither is an error with no code.
@pytest.mark.parametrize(("code", "rerun", "status"), [(14, True, None), (8, True, None),
                                                       (3, False, "INVALID_ARGUMENT"), (None, False, "UNKNOWN")])
def test_retryable_row_errors_of_the_batch_run_again_online(airflow_db, emulator, gemini_conn, tmp_path, code, rerun,
                                                            status):
    from gemini_batch_provider.emulator import RowErrors

    errors = RowErrors(rate=0.4, code=code)
    emulator.configure("batches", row_errors=errors)
    hit = {r["id"] for r in RECORDS if errors.hits(r["id"])}
    assert 0 < len(hit) < len(RECORDS)  # the rate and keys give both kinds of row
    dag_run, rows = run_dag(tmp_path, "gemini_op_rerun", RECORDS)
    assert dag_run.state == "success"
    assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)  # each row once
    by_key = {r["key"]: r for r in rows}
    for key, row in by_key.items():
        if key not in hit:
            assert (row["status"], row["path"]) == ("succeeded", "batch")
        elif rerun:
            assert (row["status"], row["path"], row["error"]) == ("succeeded", "online", None)
        else:
            assert (row["status"], row["path"], row["error"]["code"]) == ("failed", "batch", code)
            assert row["error"]["status"] == status  # filled in from the code, which the line alone carries
    summary = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch")
    assert summary["rows"] == 7 and sum(summary["counts"].values()) == 7
    if rerun:
        assert summary["path"] == "batch+online"
        assert summary["rows_by_path"] == {"batch": 7 - len(hit), "online": len(hit)}
    else:
        assert summary["path"] == "batch" and summary["counts"]["failed"] == len(hit)


def test_deadline_with_cancel_lands_cancelled_rows_and_fails(airflow_db, emulator, gemini_conn, tmp_path):
    emulator.configure("batches", pending_s=60)
    dag_run, rows = run_dag(tmp_path, "gemini_op_deadline_cancel", RECORDS)
    assert dag_run.state == "failed"
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS]
    assert {(r["status"], r["path"]) for r in rows} == {("cancelled", "batch")}


def test_input_is_split_over_jobs_and_joined_back(airflow_db, emulator, gemini_conn, tmp_path):
    dag_run, rows = run_dag(tmp_path, "gemini_op_sharded", RECORDS)
    assert dag_run.state == "success"
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS]
    assert all(r["status"] == "succeeded" for r in rows)
    jobs = sorted(emulator.state.store.batches.values(), key=lambda b: b.resource["displayName"])
    assert [int(b.resource["batchStats"]["requestCount"]) for b in jobs] == [3, 3, 1]
    summary = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch")
    assert summary["batch_jobs"] == [b.resource["name"] for b in jobs]


def test_a_retry_after_a_lost_worker_reattaches_instead_of_paying_twice(airflow_db, emulator, gemini_conn, tmp_path):
    dag_run, rows = run_dag(tmp_path, "gemini_op_retry", RECORDS)
    assert dag_run.state == "success"
    assert dag_run.get_task_instance("batch").try_number == 2
    assert len(emulator.state.store.batches) == 1  # one job: the second try found the first try's
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS] and all(r["status"] == "succeeded" for r in rows)


def test_a_damaged_ledger_fails_the_task_instead_of_submitting_again(airflow_db, emulator, client, gemini_conn,
                                                                     tmp_path):
    tmp_path.mkdir(exist_ok=True)
    ledger = tmp_path / "results.jsonl.gemini-batch.json"
    ledger.write_text('{"identity": "gemini_op_deferrable/batch/run/1", "shards": [{"ind')  # cut short
    dag_run, rows = run_dag(tmp_path, "gemini_op_deferrable", RECORDS)
    assert dag_run.state == "failed" and rows == []
    assert list(client.batches.list()) == []  # nothing submitted, nothing paid for
    assert ledger.read_text().endswith('"ind')  # left as found, for whoever restores it


def test_the_same_run_again_reattaches_and_a_changed_input_fails(airflow_db, emulator, gemini_conn, tmp_path):
    import pendulum

    from tests.conftest import DAGS_FOLDER

    source, output = tmp_path / "in.jsonl", tmp_path / "results.jsonl"
    dag = DagBag(dag_folder=DAGS_FOLDER).get_dag("gemini_op_deferrable")
    conf, when = {"in": str(source), "out": str(output)}, pendulum.datetime(2026, 2, 1, tz="UTC")

    def run(records):
        source.write_text("".join(json.dumps(r) + "\n" for r in records))
        return dag.test(run_conf=conf, logical_date=when, run_after=when)  # one run id each time: a cleared task

    def landed():  # the rows, but for when they landed
        return [{**row, "answered_at": None} for row in map(json.loads, output.read_text().splitlines())]

    assert run(RECORDS).state == "success"
    first = landed()
    assert run(RECORDS).state == "success"  # reattached to the job it already created and landed again
    assert len(emulator.state.store.batches) == 1 and landed() == first
    changed = run([*RECORDS, {"id": "doc-new", "text": "A row added since."}])
    assert changed.state == "failed"  # on_changed_input="fail": nothing new uploaded or billed
    assert len(emulator.state.store.batches) == 1 and len(emulator.state.store.files) == 1


def test_granular_submit_sensor_results(airflow_db, emulator, gemini_conn, tmp_path):
    dag_run, rows = run_dag(tmp_path, "gemini_op_granular", RECORDS)
    assert dag_run.state == "success"
    job_names = dag_run.get_task_instance("submit").xcom_pull(task_ids="submit")
    assert len(job_names) == 2 == len(emulator.state.store.batches)
    ended = dag_run.get_task_instance("wait").xcom_pull(task_ids="wait")
    assert [j["name"] for j in ended] == job_names and {j["state"] for j in ended} == {"JOB_STATE_SUCCEEDED"}
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS] and all(r["status"] == "succeeded" for r in rows)
    summary = dag_run.get_task_instance("land").xcom_pull(task_ids="land")
    assert summary["batch_jobs"] == job_names and summary["counts"]["succeeded"] == 7
    # Only the jobs' outputs are left (in the order the jobs ended): the uploaded inputs were deleted.
    assert sorted(emulator.state.store.files) == sorted(f"batch-{name.removeprefix('batches/')}" for name in job_names)


def test_landing_reads_each_keys_job_from_the_ledger_not_from_the_input(airflow_db, emulator, gemini_conn, tmp_path):
    dag_run, rows = run_dag(tmp_path, "gemini_op_granular_input_gone", RECORDS)
    assert dag_run.state == "success" and not (tmp_path / "in.jsonl").exists()
    assert len(emulator.state.store.batches) == 3  # 3 + 3 + 1 rows, each key joined to its own job's output
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS] and all(r["status"] == "succeeded" for r in rows)
    keys = [json.loads(line) for line in (tmp_path / "results.jsonl.gemini-batch-keys.jsonl").read_text().splitlines()]
    assert [entry[:2] for entry in keys] == [[r["id"], i // 3] for i, r in enumerate(RECORDS)]
    # Each row's request digest, recorded when its shard was written, lands in its row without the input.
    assert [entry[2] for entry in keys] == [r["request_digest"] for r in rows] and len({e[2] for e in keys}) == 7


def test_on_kill_cancels_the_jobs_the_task_created(airflow_db, emulator, gemini_conn, tmp_path):
    import uuid

    import pendulum
    from airflow.sdk import DAG

    from gemini_batch_provider.operators.submit import GeminiSubmitBatchOperator
    from tests.dagbag import test_dag

    class KilledAfterSubmit(GeminiSubmitBatchOperator):
        def execute(self, context):
            names = super().execute(context)
            self.on_kill()  # what Airflow calls on the running task when a user kills it (mark failed, clear)
            return names

    emulator.configure("batches", outcome="stall")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    with DAG(dag_id=f"on_kill_{uuid.uuid4().hex[:8]}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        KilledAfterSubmit(task_id="submit", input_path=str(source), output_path=str(tmp_path / "out.jsonl"),
                          prompt_template="Summarize: {text}", key_field="id", max_requests_per_job=4)
    dag_run = test_dag(dag, tmp_path / "no-dags")
    ti = dag_run.get_task_instance("submit")
    names = ti.xcom_pull(task_ids="submit")
    assert len(names) == 2
    assert ti.xcom_pull(task_ids="submit", key="_link_GeminiBatchJobLink") == "https://aistudio.google.com/batches"
    record = ti.xcom_pull(task_ids="submit", key="gemini_batch_jobs")  # what the Gemini batches page finds
    assert record["batch_jobs"] == names and record["conn_id"] == gemini_conn
    assert record["output_path"] == str(tmp_path / "out.jsonl") and record["estimated_cost_usd"] > 0
    states = {b.resource["state"] for b in emulator.state.store.batches.values()}
    assert states == {"BATCH_STATE_CANCELLED"}


def test_the_online_operator_runs_through_a_vertex_connection(airflow_db, emulator, monkeypatch, tmp_path):
    vertex_conn(monkeypatch, emulator, conn_id="gemini_default")
    dag_run, rows = run_dag(tmp_path, "gemini_op_online", RECORDS)
    assert dag_run.state == "success"
    assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)
    assert all(r["status"] == "succeeded" and r["path"] == "online" for r in rows)


@pytest.mark.parametrize("row_error_rate", [0.0, 0.4])
def test_the_batch_operator_on_vertex_stages_in_cloud_storage(airflow_db, emulator, gcs, monkeypatch, tmp_path,
                                                              row_error_rate):
    from gemini_batch_provider.emulator import RowErrors
    vertex_conn(monkeypatch, emulator, conn_id="gemini_default")
    errors = RowErrors(rate=row_error_rate)
    emulator.configure("vertex", row_errors=errors)
    dag_run, rows = run_dag(tmp_path, "gemini_op_vertex", RECORDS)
    assert dag_run.state == "success"  # PARTIALLY_SUCCEEDED lands its failed rows and succeeds
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS]
    failed = {r["key"] for r in rows if r["status"] == "failed"}
    assert failed == {r["id"] for r in RECORDS if errors.hits(r["id"])}
    assert all(r["text"] for r in rows if r["key"] not in failed)
    jobs = list(emulator.state.vertex.jobs.values())
    assert len(jobs) == 2 and all(j.resource["inputConfig"]["gcsSource"]["uris"][0].startswith("gs://bkt/staging/")
                                  for j in jobs)
    link = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch", key="_link_GeminiBatchJobLink")
    assert link.startswith("https://console.cloud.google.com/vertex-ai/batch-predictions?project=")
    staged = [blob.name for blob in gcs.list_blobs("bkt", prefix="staging/") if blob.name.endswith(".jsonl")
              and "-out/" not in blob.name]
    assert staged == []  # the staged inputs were deleted after landing


@pytest.mark.parametrize(("outcome", "status"), [("fail", "missing"), ("expire", "expired")])
def test_a_vertex_job_that_did_not_succeed_lands_every_row_then_fails(airflow_db, emulator, gcs, monkeypatch,
                                                                      tmp_path, outcome, status):
    vertex_conn(monkeypatch, emulator, conn_id="gemini_default")
    emulator.configure("vertex", outcome=outcome)
    dag_run, rows = run_dag(tmp_path, "gemini_op_vertex", RECORDS)
    assert dag_run.state == "failed"
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS]
    assert all(r["status"] == status and "/batchPredictionJobs/" in r["error"]["message"] for r in rows)
    # What landed, and what it cost, is in XCom although the task failed.
    summary = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch")
    assert summary["counts"][status] == len(RECORDS) and summary["output_path"].endswith("results.jsonl")
    assert "cost_usd" in summary and summary["usage"] is not None


@pytest.mark.parametrize("vertex", [False, True])
def test_results_and_ledger_can_live_in_cloud_storage(airflow_db, emulator, gemini_conn, gcs, monkeypatch, tmp_path,
                                                      vertex):
    from tests.conftest import DAGS_FOLDER

    if vertex:
        vertex_conn(monkeypatch, emulator, conn_id="gemini_default")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    dag_id = "gemini_op_vertex" if vertex else "gemini_op_deferrable"
    out = "gs://bkt/results/run.jsonl"
    dag_run = DagBag(dag_folder=DAGS_FOLDER).get_dag(dag_id).test(run_conf={"in": str(source), "out": out})
    assert dag_run.state == "success"
    rows = [json.loads(line) for line in gcs.bucket("bkt").blob("results/run.jsonl").download_as_text().splitlines()]
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS] and all(r["status"] == "succeeded" for r in rows)
    ledger = json.loads(gcs.bucket("bkt").blob("results/run.jsonl.gemini-batch.json").download_as_text())
    summary = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch")
    assert summary["output_path"] == out and [s["job"] for s in ledger["shards"]] == summary["batch_jobs"]


def test_a_budget_below_the_estimate_fails_before_anything_is_sent(airflow_db, emulator, gemini_conn, tmp_path):
    dag_run, rows = run_dag(tmp_path, "gemini_op_budget", RECORDS)
    assert dag_run.state == "failed"
    assert emulator.state.store.files == {} and emulator.state.store.batches == {} and rows == []


def test_the_budget_message_names_the_estimate_and_the_fix():
    from gemini_batch_provider.core.cost import Estimate
    from gemini_batch_provider.core.errors import BudgetExceeded, InputError
    from gemini_batch_provider.core.plan import Budget

    budget = Budget(max_cost_usd=1.0)
    found = Estimate(requests=10, prompt_tokens=1_000_000, output_tokens=100_000)
    assert budget.check("gemini-2.5-flash", found, batch=False) == pytest.approx(0.55)
    with pytest.raises(BudgetExceeded, match=r"estimated cost \$1\.3000 \(10 requests\) is over max_cost_usd "
                                             r"\$1\.0000; nothing was sent or billed"):
        budget.check("gemini-2.5-flash", Estimate(requests=10, prompt_tokens=1_000_000, output_tokens=400_000),
                     batch=False)
    with pytest.raises(BudgetExceeded, match="has no known price; give its price with prices="):
        budget.check("gemini-9-unknown", Estimate(requests=1, prompt_tokens=1, output_tokens=1), batch=False)
    for bad in (float("nan"), float("inf"), -1.0, "5"):
        with pytest.raises(InputError, match="max_cost_usd must be a finite number of US dollars"):
            Budget(max_cost_usd=bad)
    for bad in (-1, 2.5, True):
        with pytest.raises(InputError, match="count_tokens_sample must be a whole number of rows"):
            Budget(count_tokens_sample=bad)


@pytest.mark.parametrize(("dag_id", "path"), [("gemini_op_embed", "batch"), ("gemini_op_embed_online", "online")])
def test_embeddings_land_one_vector_per_record(airflow_db, emulator, gemini_conn, tmp_path, dag_id, path):
    import math

    records = [*RECORDS, {"id": "same-as-0", "text": RECORDS[0]["text"]}, {"id": "other", "text": "Zebras graze."}]
    dag_run, rows = run_dag(tmp_path, dag_id, records)
    assert dag_run.state == "success"
    keys, ids = [r["key"] for r in rows], [r["id"] for r in records]
    assert sorted(keys) == sorted(ids)
    if path == "batch":
        assert keys == ids  # the batch lands in input order; the online path as the calls finish
    by_key = {r["key"]: r for r in rows}
    assert len(by_key) == len(rows) == len(records)
    assert all(r["status"] == "succeeded" and r["path"] == path and r["text"] is None for r in rows)
    vectors = {key: row["embedding"] for key, row in by_key.items()}
    assert all(len(v) == 64 and math.isclose(math.fsum(x * x for x in v), 1.0, abs_tol=1e-4) for v in vectors.values())

    def cosine(a, b):
        return math.fsum(x * y for x, y in zip(vectors[a], vectors[b], strict=True))

    # The same text embeds the same; texts sharing words lie closer than unrelated ones.
    assert vectors["doc-0"] == vectors["same-as-0"]
    assert cosine("doc-0", "doc-3") > cosine("doc-0", "other")
    summary = dag_run.get_task_instance("embed").xcom_pull(task_ids="embed")
    assert summary["counts"] == {**NONE, "succeeded": len(records)} and summary["model"] == "gemini-embedding-001"
    assert summary["estimated_cost_usd"] > 0 and summary["cost_usd"] is None  # no usage reported for embeddings
    if path == "batch":
        [job] = emulator.state.store.batches.values()
        assert job.kind == "embed"


def test_embeddings_refuse_a_vertex_connection_and_bad_settings(airflow_db, emulator, monkeypatch, tmp_path):
    import pendulum
    from airflow.sdk import DAG

    from gemini_batch_provider.core.errors import InputError
    from gemini_batch_provider.operators.embed import GeminiConcurrentEmbedOperator
    from tests.dagbag import recording_failures, test_dag

    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_VERTEX_ADC", json.dumps(
        {"conn_type": "gemini", "extra": {"vertexai": True, "project": "p", "base_url": emulator.base_url}}))
    task = recording_failures(GeminiConcurrentEmbedOperator)
    with DAG(dag_id="embed_vertex", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        task(task_id="embed", records=RECORDS, prompt_template="{text}", output_path=str(tmp_path / "out.jsonl"),
             gemini_conn_id="gemini_vertex_adc", retries=1)
    dag_run = test_dag(dag, tmp_path / "no-dags")
    [ti] = dag_run.get_task_instances()
    assert ti.state == "failed" and ti.try_number == 1  # refused, not retried
    [error] = task.errors
    assert "embeddings run on a Gemini API connection" in error and emulator.state.counters["ok"] == 0
    with pytest.raises(InputError, match="output_dimensionality must be a positive integer"):
        GeminiConcurrentEmbedOperator(task_id="e", records=[], prompt_template="{text}", output_path="/tmp/x",
                                      output_dimensionality=0)
    with pytest.raises(InputError, match="embeddings take no system_instruction"):
        GeminiConcurrentEmbedOperator(task_id="e", records=[], prompt_template="{text}", output_path="/tmp/x",
                                      system_instruction="be brief")


def test_the_results_asset_event_carries_the_summary_and_the_task_links_to_its_job(airflow_db, emulator,
                                                                                    gemini_conn, tmp_path):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag_run, rows = run_dag(tmp_path, "gemini_op_asset", RECORDS, registered=True)
    assert dag_run.state == "success"
    ti = dag_run.get_task_instance("batch")
    summary = ti.xcom_pull(task_ids="batch")
    with create_session() as session:
        [event] = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == dag_run.run_id)).all()
        assert event.asset.name == "gemini_test_results"
        # A DAG scheduled on the asset finds the results of this very run.
        assert event.extra["output_path"] == summary["output_path"] == str(tmp_path / "results.jsonl")
        assert event.extra["counts"]["succeeded"] == len(rows) == 7
    assert ti.xcom_pull(task_ids="batch", key="_link_GeminiBatchJobLink") == "https://aistudio.google.com/batches"


def test_the_vertex_link_opens_the_job_or_the_project_list():
    from gemini_batch_provider.links import vertex_jobs_url

    assert vertex_jobs_url(["projects/1/locations/europe-west4/batchPredictionJobs/42"], "acme", "europe-west4") == (
        "https://console.cloud.google.com/vertex-ai/locations/europe-west4/batch-predictions/42?project=acme")
    assert vertex_jobs_url(["a/1", "a/2"], "acme", "europe-west4") == (
        "https://console.cloud.google.com/vertex-ai/batch-predictions?project=acme")


def test_a_prompt_takes_airflows_jinja_then_each_rows_fields_and_raw_braces_reach_the_model_as_text():
    import pendulum
    from airflow.sdk import DAG

    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    template = '{% raw %}Answer as {{"summary": "..."}}{% endraw %} for {{ params.audience }}: {text!r:.9}'
    with DAG(dag_id="prompt_template", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
             params={"audience": "children"}) as dag:
        task = GeminiBatchOperator(task_id="t", records=[{"id": "a", "text": "A long story."}], key_field="id",
                                   prompt_template=template, output_path="/tmp/prompt-template/results.jsonl")
    task.render_template_fields({"params": {"audience": "children"}}, dag.get_template_env())
    request = task.plan().spec.request({"id": "a", "text": "A long story."}, 0)
    assert request["contents"][0]["parts"] == [{"text": """Answer as {"summary": "..."} for children: 'A long s"""}]


def test_the_estimate_takes_the_prompt_side_from_count_tokens_on_a_sample_of_rows(emulator, client, gemini_conn):
    from gemini_batch_provider.core.estimate import checked_cost
    from gemini_batch_provider.core.plan import BatchPlan, Budget, RunInput
    from gemini_batch_provider.core.requests import RequestSpec
    from gemini_batch_provider.hooks.gemini import GeminiHook

    # Code is denser in tokens than prose: the rule of thumb (4 characters a token) counts it low.
    records = [{"id": str(i), "code": f"def f{i}(a, b):\n    return g(a[{i}], b) or h(a, b={i})\n"} for i in range(40)]
    actual = sum(client.models.count_tokens(model="gemini-2.5-flash-lite", contents=f"Explain: {r['code']}")
                 .total_tokens for r in records)
    config = {"max_output_tokens": 1}  # the estimate is then almost all prompt: $0.10 a million, halved

    def estimated_prompt(sample):
        plan = BatchPlan(model="gemini-2.5-flash-lite", spec=RequestSpec("Explain: {code}", generation_config=config),
                         output_path="/tmp/o.jsonl", records=tuple(records), budget=Budget(count_tokens_sample=sample))
        _, usd = checked_cost(plan, GeminiHook().backend, RunInput(plan.records, plan.spec), True,
                              logging.getLogger(__name__))
        return (usd * 2e6 - len(records) * 0.40) / 0.10

    assert estimated_prompt(0) < 0.8 * actual  # the rule of thumb alone
    assert estimated_prompt(5) == pytest.approx(actual, rel=0.05)  # five rows counted by the API


def test_priority_reaches_each_batch_job_and_a_vertex_connection_refuses_it_before_any_upload(
        airflow_db, emulator, gemini_conn, monkeypatch, tmp_path):
    import pendulum
    from airflow.sdk import DAG

    from gemini_batch_provider.core.errors import InputError
    from gemini_batch_provider.operators.batch import GeminiBatchOperator
    from tests.dagbag import recording_failures, test_dag

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    task = recording_failures(GeminiBatchOperator)
    with DAG(dag_id="batch_priority", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        task(task_id="urgent", input_path=str(source), output_path=str(tmp_path / "urgent.jsonl"), key_field="id",
             prompt_template="Summarize: {text}", max_requests_per_job=4, priority=-7, poll_interval=0.2)
    assert test_dag(dag, tmp_path / "bag").state == "success"
    jobs = list(emulator.state.store.batches.values())
    assert len(jobs) == 2 and [job.resource["priority"] for job in jobs] == ["-7", "-7"]  # every shard's job
    rows = (tmp_path / "urgent.jsonl").read_text().splitlines()
    assert sorted(json.loads(row)["key"] for row in rows) == sorted(r["id"] for r in RECORDS)

    vertex_conn(monkeypatch, emulator, conn_id="gemini_default")
    with DAG(dag_id="batch_priority_vertex", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        task(task_id="vertex", input_path=str(source), output_path=str(tmp_path / "vertex.jsonl"), key_field="id",
             prompt_template="Summarize: {text}", priority=1, gcs_staging_uri="gs://bkt/staging", retries=1)
    dag_run = test_dag(dag, tmp_path / "bag-vertex")
    assert dag_run.state == "failed" and dag_run.get_task_instance("vertex").try_number == 1  # refused, not retried
    assert "priority is a Gemini Developer API batch control" in task.errors[-1]
    assert not emulator.state.vertex.jobs and len(emulator.state.store.batches) == 2

    for bad in ("high", 2.5, True, 2**63):
        with pytest.raises(InputError, match=r"bad_priority: priority must be a whole number \(an int64"):
            GeminiBatchOperator(task_id="bad_priority", records=RECORDS, prompt_template="{text}",
                                output_path="/tmp/x.jsonl", priority=bad)
