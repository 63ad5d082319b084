"""Gemini's online service tiers through real Airflow (``dag.test()``) against the emulator: Flex at
the batch price with shed calls retried, and Priority, each row saying which tier served it."""

from __future__ import annotations

import json
import uuid

import pendulum
import pytest

from gemini_batch_provider.emulator.tiers import TierConfig
from tests.conftest import RECORDS
from tests.dagbag import test_dag


def _run(tmp_path, operator: str, **options):
    """One run of a one-task DAG on RECORDS: its DagRun, its rows and its summary."""
    from airflow.sdk import DAG

    from gemini_batch_provider.operators.batch import GeminiBatchOperator
    from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator

    name = uuid.uuid4().hex[:8]
    source, output = tmp_path / f"in-{name}.jsonl", tmp_path / f"out-{name}.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    settings = {"input_path": str(source), "output_path": str(output), "key_field": "id",
                "prompt_template": "Summarize: {text}", "reuse": False, **options}
    kind = GeminiBatchOperator if operator == "batch" else GeminiConcurrentGenerateOperator
    with DAG(dag_id=f"tiers_{name}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        kind(task_id="run", **settings)
    (tmp_path / f"bag-{name}").mkdir()
    dag_run = test_dag(dag, tmp_path / f"bag-{name}")
    rows = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    return dag_run, rows, dag_run.get_task_instance("run").xcom_pull(task_ids="run")


def _standard_cost(rows) -> float:
    """What the rows' tokens cost at the Standard price."""
    from gemini_batch_provider.core.cost import cost_usd, price_of

    price = price_of("gemini-2.5-flash")
    return sum(cost_usd({**r["usage"], "service_tier": "standard"}, price, batch=False) for r in rows)


def test_a_flex_run_with_shed_calls_lands_every_row_once_at_the_batch_price(airflow_db, emulator, gemini_conn,
                                                                           tmp_path):
    standard_run, standard_rows, standard = _run(tmp_path, "online")
    assert standard_run.state == "success" and standard["rows_by_service_tier"] == {"standard": 7}

    emulator.configure("tiers", config=TierConfig(flex_latency_s=0.05, flex_shed_rate=0.4, seed=3))
    run, rows, summary = _run(tmp_path, "batch", mode="flex")
    assert run.state == "success" and emulator.state.counters["shed"] > 0  # some calls were shed, then retried
    assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)  # each row once
    assert {r["path"] for r in rows} == {"flex"} and {r["status"] for r in rows} == {"succeeded"}
    assert {r["usage"]["service_tier"] for r in rows} == {"flex"}
    assert summary["path"] == "flex" and summary["batch_jobs"] == [] and not emulator.state.store.batches
    assert summary["rows_by_path"] == {"flex": 7} and summary["rows_by_service_tier"] == {"flex": 7}
    # The same answers as Standard's, at half the price their tokens cost there.
    assert [r["text"] for r in sorted(rows, key=lambda r: r["key"])] == [
        r["text"] for r in sorted(standard_rows, key=lambda r: r["key"])]
    assert summary["cost_usd"] == pytest.approx(_standard_cost(rows) / 2, abs=1e-6) and summary["cost_usd"] > 0


def test_priority_calls_are_priced_as_priority_and_flex_does_not_embed(airflow_db, emulator, gemini_conn, tmp_path):
    from gemini_batch_provider.core.errors import InputError
    from gemini_batch_provider.operators.embed import GeminiBatchEmbedOperator

    run, rows, summary = _run(tmp_path, "online", service_tier="priority")
    assert run.state == "success" and {r["path"] for r in rows} == {"online"}
    assert {r["usage"]["service_tier"] for r in rows} == {"priority"}
    assert summary["rows_by_service_tier"] == {"priority": 7}
    assert summary["cost_usd"] == pytest.approx(_standard_cost(rows) * 2, abs=1e-6)  # twice Standard, at most

    # Priority falls back to Standard when capacity is short: such rows are priced as Standard.
    emulator.configure("tiers", config=TierConfig(priority_fallback_rate=1.0))
    run, rows, summary = _run(tmp_path, "online", service_tier="priority")
    assert run.state == "success" and summary["rows_by_service_tier"] == {"standard": 7}
    assert summary["cost_usd"] == pytest.approx(_standard_cost(rows), abs=1e-6)

    with pytest.raises(InputError, match="mode 'flex' is for generateContent"):
        GeminiBatchEmbedOperator(task_id="embed", records=RECORDS, prompt_template="{text}", output_path="/tmp/x",
                                 mode="flex")
    with pytest.raises(InputError, match="service_tier must be one of"):
        _run(tmp_path, "online", service_tier="cheap")


def test_auto_with_a_short_deadline_goes_flex_and_says_why(airflow_db, emulator, gemini_conn, tmp_path, capfd):
    emulator.configure("tiers", config=TierConfig(flex_latency_s=0.0))
    run, rows, summary = _run(tmp_path, "batch", mode="auto", online_threshold=5, deadline=3600)
    assert run.state == "success" and summary["path"] == "flex" and not emulator.state.store.batches
    assert {r["path"] for r in rows} == {"flex"} and len(rows) == 7
    told = "".join(capfd.readouterr())
    assert "7 rows go online, Flex tier (auto: 7 rows due within 3600 s, which Flex finishes by then" in told
    run, _, summary = _run(tmp_path, "batch", mode="auto", online_threshold=5, poll_interval=0.2)
    assert run.state == "success" and summary["path"] == "batch"  # no deadline: the Batch API
    assert "7 rows go to the Batch API (auto: 7 rows, more than online_threshold (5): the Batch API)" in "".join(
        capfd.readouterr())


def test_flex_answers_are_reused_as_the_flex_answers_they_were(airflow_db, emulator, gemini_conn, tmp_path):
    emulator.configure("tiers", config=TierConfig(flex_latency_s=0.0))
    store = str(tmp_path / "answers")
    _, _, first = _run(tmp_path, "batch", mode="flex", reuse=True, answer_store=store)
    calls = emulator.state.counters["ok"]
    run, rows, again = _run(tmp_path, "batch", mode="flex", reuse=True, answer_store=store)
    assert run.state == "success" and emulator.state.counters["ok"] == calls  # nothing sent
    assert {r["path"] for r in rows} == {"reused"} and {r["reused_from"] for r in rows} == {"flex"}
    assert again["saved_cost_usd"] == pytest.approx(first["cost_usd"]) and again["cost_usd"] == 0


@pytest.mark.parametrize("on_deadline", ["online", "cancel"])
def test_rows_flex_cannot_answer_by_the_deadline_go_where_on_deadline_says(airflow_db, emulator, gemini_conn,
                                                                           tmp_path, on_deadline):
    # 7 rows, 2 calls in flight, 0.6 s a Flex call: Flex cannot answer them all within 1 s.
    emulator.configure("tiers", config=TierConfig(flex_latency_s=0.6))
    run, rows, summary = _run(tmp_path, "batch", mode="flex", online_concurrency=2, deadline=1.0,
                              on_deadline=on_deadline)
    assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)  # each row once, whatever the path
    flex = [r for r in rows if r["path"] == "flex" and r["status"] == "succeeded"]
    assert all(r["usage"]["service_tier"] == "flex" for r in flex)
    rest = [r for r in rows if r not in flex]
    assert len(rest) >= 1 and len(flex) + len(rest) == 7
    if on_deadline == "online":  # the rest on the Standard tier
        assert run.state == "success"
        assert {r["path"] for r in rest} == {"online"} and {r["status"] for r in rest} == {"succeeded"}
        assert {r["usage"]["service_tier"] for r in rest} == {"standard"}
        assert summary["rows_by_path"] == {k: v for k, v in {"flex": len(flex), "online": len(rest)}.items() if v}
    else:  # the rest landed cancelled, and the task failed after landing
        assert run.state == "failed" and {r["status"] for r in rest} == {"cancelled"}
        assert {r["path"] for r in rest} == {"flex"}
        assert all("Flex had not answered it by the deadline" in r["error"]["message"] for r in rest)
