"""The fault matrix: the batch and online paths through every fault the emulator can play, and what
happened to the data.

Each fault gets a fresh emulator (in this process) and one run of a DAG holding the operator,
through Airflow's own ``dag.test()`` on a SQLite metadata database: a batch task defers, Airflow
stores and runs its trigger and resumes the task with the event. Prints one JSON object per fault:

``fault``, ``path`` (batch or online), ``rows_in``, ``rows_out`` (results rows written),
``rows_lost`` (input keys with no results row), ``rows_duplicated`` (keys with more than one),
``duplicate_jobs`` (batch jobs created beyond one per shard), ``rows_reused`` (rows landed from an
earlier answer), ``responses_429`` (answered by the emulator), ``outcome`` (``success`` or
``failed``), ``message`` (what the user sees: the task's error, or the summary's counts),
``seconds``.

    .venv/bin/python benchmarks/faults.py [--rows N] [--short] [--only FAULT]

``--short`` runs every fault on 40 rows (what CI runs); the default is 200 rows. Every fault runs
with answer reuse on, as the operators default to it: a quarter of the rows (every fourth) has an
answer in the results file the run replaces, so those land ``reused`` and the faults strike the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_HOME = tempfile.mkdtemp(prefix="gemini-fault-matrix-")
os.environ.update({"AIRFLOW_HOME": _HOME, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
                   "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": f"{_HOME}/dags",
                   "NO_PROXY": "127.0.0.1,localhost"})
sys.path.insert(0, str(REPO))  # the tests' helpers that run a DAG built here through dag.test()
# stdout carries the JSON lines alone: whatever Airflow prints, on import too, goes to stderr.
sys.stdout.flush()
RESULTS = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)

import pendulum  # noqa: E402
from airflow.sdk import DAG  # noqa: E402
from tests.dagbag import recording_failures, test_dag  # noqa: E402

from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread, FaultConfig, RowErrors  # noqa: E402
from gemini_batch_provider.operators.batch import GeminiBatchOperator  # noqa: E402
from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator  # noqa: E402

API_KEY = "fault-matrix-key"
BATCH_TIMING = {"batch_pending_s": 0.5, "batch_running_s": 1.0}


@dataclass
class Fault:
    """One line of the matrix: the emulator's settings, the operator's, and what happens during the run."""

    name: str
    path: str  # "batch" or "online"
    emulator: dict[str, Any] = field(default_factory=dict)
    operator: dict[str, Any] = field(default_factory=dict)
    during: Callable[[Run], None] | None = None  # runs in a thread beside the task
    before: Callable[[Run], None] | None = None  # runs before the task starts


@dataclass
class Run:
    """The emulator a fault runs against (replaced when the fault restarts it)."""

    emulator: EmulatorThread
    rows: int


def restart_emulator(run: Run) -> None:
    """Once the task's job exists (the task is past its create call, however slow the machine),
    stop the emulator for 2 s while the job runs, then start it again on the same port and folder."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=run.emulator.base_url))
    give_up = time.monotonic() + 120
    while not list(client.batches.list()):
        if time.monotonic() > give_up:
            raise TimeoutError("the task created no batch job in 120 s")
        time.sleep(0.05)
    run.emulator.stop()
    time.sleep(2.0)  # the outage the waiting task must ride out
    run.emulator = EmulatorThread(run.emulator.state.config, port=run.emulator.port).start()


def fill_enqueued_tokens(run: Run) -> None:
    """A job of another team that holds the model's enqueued-token limit for a few seconds."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=run.emulator.base_url))
    lines = "".join(json.dumps({"key": str(i), "request": {"contents": [{"parts": [{"text": "x" * 400}]}]}}) + "\n"
                    for i in range(run.rows))
    path = Path(_HOME) / "blocker.jsonl"
    path.write_text(lines)
    uploaded = client.files.upload(file=path, config={"mime_type": "jsonl"})
    client.batches.create(model="gemini-2.5-flash", src=uploaded.name, config={"display_name": "another team"})


def faults(rows: int) -> list[Fault]:
    online = {"concurrency": 16, "max_attempts": 12}
    batch = {"poll_interval": 0.2, "max_poll_interval": 1.0, "deferrable": True}
    return [
        Fault("429 storm (quota a tenth of the load)", "online", {"rpm": rows * 15, "quota_window_s": 1.0}, online),
        Fault("5xx (15% 500, 15% 503)", "online",
              {"faults": FaultConfig(error_500_rate=0.15, error_503_rate=0.15, seed=1)}, online),
        Fault("connection resets (20%)", "online", {"faults": FaultConfig(reset_rate=0.2, seed=2)}, online),
        Fault("slow responses past the timeout (10% take 3 s, timeout 1 s)", "online",
              {"faults": FaultConfig(slow_rate=0.1, slow_s=3.0, seed=3)}, {**online, "request_timeout": 1.0}),
        Fault("outage (every call 503)", "online", {"faults": FaultConfig(error_503_rate=1.0, seed=4)},
              {**online, "max_attempts": 3}),
        Fault("job FAILED", "batch", {"batch_outcome": "fail"}, batch),
        Fault("job EXPIRED", "batch", {"batch_outcome": "expire"}, batch),
        Fault("job CANCELLED at the deadline", "batch", {"batch_outcome": "stall"},
              {**batch, "deadline": 3.0, "on_deadline": "cancel"}),
        Fault("job stuck past the deadline, rows finished online", "batch", {"batch_outcome": "stall"},
              {**batch, "deadline": 3.0, "on_deadline": "online"}),
        Fault("per-row errors UNAVAILABLE (20%), re-run online", "batch", {"batch_row_errors": RowErrors(0.2, 14)},
              {**batch, "rerun_failed_online": True}),
        Fault("per-row errors INVALID_ARGUMENT (20%)", "batch", {"batch_row_errors": RowErrors(0.2, 3)}, batch),
        Fault("malformed result file (1 line in 7 cut in half)", "batch", {"batch_output_fault": "malformed"},
              batch),
        Fault("malformed result file, re-run online", "batch", {"batch_output_fault": "malformed"},
              {**batch, "rerun_failed_online": True}),
        Fault("truncated result file (last third)", "batch", {"batch_output_fault": "truncated"}, batch),
        Fault("429 on create (enqueued-token limit full)", "batch", {"max_enqueued_tokens": rows * 150}, batch,
              before=fill_enqueued_tokens),
        Fault("emulator restart mid-job (deferred)", "batch", {"batch_running_s": 4.0}, batch,
              during=restart_emulator),
        Fault("emulator restart mid-job (polling in the worker)", "batch", {"batch_running_s": 4.0},
              {**batch, "deferrable": False}, during=restart_emulator),
    ]


def records(rows: int) -> list[dict[str, str]]:
    return [{"id": f"row-{i:05d}", "text": f"Row {i} is about topic {i % 7}. It has a second sentence."}
            for i in range(rows)]


def seed_answers(rows: list[dict[str, str]], output: Path) -> int:
    """Write answers for every fourth row at ``output``, as an earlier run of the same requests
    would have left them; how many."""
    from gemini_batch_provider.core.requests import RequestSpec, request_digest
    from gemini_batch_provider.core.results import now_iso

    spec = RequestSpec("Summarize: {text}", key_field="id")
    seeded = [{"key": r["id"], "status": "succeeded", "path": "batch", "text": f"Earlier answer to {r['id']}.",
               "parsed": None, "embedding": None, "usage": {"prompt_token_count": 12, "candidates_token_count": 6,
                                                             "total_token_count": 18},
               "error": None, "finish_reason": "STOP", "thoughts": None, "images": None,
               "request_digest": request_digest("gemini-2.5-flash", spec.request(r, i)), "answered_at": now_iso(),
               "reused_from": None} for i, r in enumerate(rows) if i % 4 == 0]
    output.write_text("".join(json.dumps(row) + "\n" for row in seeded))
    return len(seeded)


def run_dag(operator: type, options: dict[str, Any], folder: Path) -> tuple[str, str]:
    """Run one task of ``operator`` in a DAG through ``dag.test()``: its outcome, and what the user
    sees (the task's error, or the summary's counts)."""
    task = recording_failures(operator)
    with DAG(dag_id="fault_matrix", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        task(task_id="fault", **options)
    dag_run = test_dag(dag, folder / "dags")
    if dag_run.state == "success":
        summary = dag_run.get_task_instance("fault").xcom_pull(task_ids="fault")
        return "success", f"counts {summary['counts']}, path {summary['path']}"
    return "failed", "; ".join(task.errors) or f"the run ended {dag_run.state}"


def run_fault(fault: Fault, rows: int, folder: Path) -> dict[str, Any]:
    config = EmulatorConfig(**{**BATCH_TIMING, **fault.emulator, "data_dir": folder / "emulator"})
    run = Run(EmulatorThread(config).start(), rows)
    os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"] = json.dumps(
        {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": run.emulator.base_url}})
    output = folder / "results.jsonl"
    common = {"records": records(rows), "key_field": "id", "output_path": str(output),
              "prompt_template": "Summarize: {text}"}
    operator = GeminiBatchOperator if fault.path == "batch" else GeminiConcurrentGenerateOperator
    seed_answers(common["records"], output)
    if fault.before:
        fault.before(run)
    side = threading.Thread(target=fault.during, args=(run,)) if fault.during else None
    started = time.monotonic()
    if side:
        side.start()
    outcome, message = run_dag(operator, {**common, **fault.operator}, folder)
    seconds = time.monotonic() - started
    if side:
        side.join()
    results = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    landed = [row["key"] for row in results]
    ours = [b for b in run.emulator.state.store.batches.values()
            if b.resource.get("displayName", "").startswith("airflow:fault_matrix:")]
    answered_429 = run.emulator.state.counters["429"]
    run.emulator.stop()
    counts = Counter(landed)
    keys = {r["id"] for r in common["records"]}
    return {"fault": fault.name, "path": fault.path, "rows_in": rows, "rows_out": len(landed),
            "rows_lost": len(keys - set(counts)), "rows_duplicated": sum(1 for c in counts.values() if c > 1),
            "duplicate_jobs": max(0, len(ours) - 1) if fault.path == "batch" else len(ours),
            "rows_reused": sum(row["path"] == "reused" for row in results),
            "responses_429": answered_429, "outcome": outcome, "message": message.replace(str(folder), "<run>"),
            "seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--short", action="store_true", help="40 rows a fault (what CI runs)")
    parser.add_argument("--only", help="run the faults whose name contains this")
    args = parser.parse_args()
    rows = 40 if args.short else args.rows
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    for fault in faults(rows):
        if args.only and args.only not in fault.name:
            continue
        with tempfile.TemporaryDirectory(prefix="fault-") as folder:
            print(json.dumps(run_fault(replace(fault), rows, Path(folder))), file=RESULTS, flush=True)


if __name__ == "__main__":
    sys.exit(main())
