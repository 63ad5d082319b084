"""Answer reuse: what a second night costs when most requests repeat, and how fast answers are looked up.

Nights: night 1 sends every one of ``--rows`` rows through ``GeminiBatchOperator`` (batch, on the
emulator, its jobs answered at once), its answers kept in an answer store; then night 2 runs on the
same rows with 0%, 1% and 10% of them changed. Each night is a ``dag.test()`` run in a process of
its own, so its peak memory is its own. One JSON line per night: ``night``, ``changed_percent``,
``requests_sent`` (what reached the emulator), ``rows_landed``, ``rows_reused``, ``cost_usd`` and
``saved_cost_usd`` (the summary's), ``task_seconds`` (the time the task's own code runs:
``execute`` before the deferral and ``execute_complete`` after it; Airflow starting each, and the
wait on the jobs, left out), ``wall_seconds`` (the whole ``dag.test()`` run), ``job_seconds`` (the
jobs' time between create and end, which the API decides) and ``peak_rss_mb``.

Lookups: an answer store of ``--stored`` answers (1,000,000 by default) and 100,000 rows looked up
in it, in a process of its own, with 100,000 stored as well to compare: ``lookup_rows_per_s`` (each
request digested and looked up), ``split_rows_per_s`` (the whole pass before sending: the input
read, every request built and checked, looked up, the reused rows written), ``load_seconds`` (the
store read into the index) and ``peak_rss_mb``.

    .venv/bin/python benchmarks/reuse.py [--rows 100000] [--stored 1000000] [--skip-nights | --skip-lookups]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
API_KEY = "reuse-benchmark-key"


def records(rows: int, changed_percent: float) -> list[dict[str, str]]:
    """``rows`` records; the first ``changed_percent`` of them changed since night 1."""
    changed = int(rows * changed_percent / 100)
    return [{"id": f"doc-{i:07d}", "text": f"Document {i} is about topic {i % 97}. "
             + (f"It changed since last night ({changed_percent}% changed)." if i < changed
               else "It has a second sentence.")}
            for i in range(rows)]


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def night(args: argparse.Namespace) -> None:
    """One night, in this process (``--night N --changed P``): print its JSON line."""
    sys.path.insert(0, str(REPO))
    import pendulum
    from airflow.sdk import DAG
    from tests.dagbag import test_dag

    from timed import TimedBatchOperator

    work = Path(args.work)
    source = work / f"night-{args.night}.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records(args.rows, args.changed)))
    with DAG(dag_id=f"reuse_night_{args.night}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        TimedBatchOperator(task_id="night", input_path=str(source), key_field="id",
                            output_path=str(work / f"results-{args.night}.jsonl"),
                            prompt_template="Summarize: {text}", answer_store=str(work / "answers"),
                            poll_interval=0.2, max_poll_interval=0.5, count_tokens_sample=0, deferrable=True)
    folder = work / f"dags-{args.night}"
    folder.mkdir()
    started = time.monotonic()
    dag_run = test_dag(dag, folder)
    seconds = time.monotonic() - started
    assert dag_run.state == "success", dag_run.state
    summary = dag_run.get_task_instance("night").xcom_pull(task_ids="night")
    print(json.dumps({"night": args.night, "changed_percent": args.changed, "rows_landed": summary["rows"],
                      "rows_reused": summary["rows_by_path"].get("reused", 0), "cost_usd": summary["cost_usd"],
                      "saved_cost_usd": summary["saved_cost_usd"], "wall_seconds": round(seconds, 2),
                      "task_seconds": round(TimedBatchOperator.own_seconds, 2),
                      "peak_rss_mb": peak_rss_mb()}), flush=True)


def lookups(args: argparse.Namespace) -> None:
    """Look 100,000 rows up in a store of ``--stored`` answers, in this process: print its JSON line."""
    import logging

    from gemini_batch_provider.core.answers import LOOKUP_CHUNK, AnswerIndex, AnswerStore, split_reused
    from gemini_batch_provider.core.plan import RunInput
    from gemini_batch_provider.core.requests import RequestSpec, request_digest
    from gemini_batch_provider.storage import Location

    work = Path(args.work)
    spec = RequestSpec("Summarize: {text}", key_field="id")
    store_folder = work / f"store-{args.stored}"
    store_folder.mkdir(parents=True)
    part = work / "part.jsonl"
    with part.open("w") as out:  # every looked-up row answered, then other answers up to --stored
        for i in range(args.stored):
            record = {"id": f"doc-{i:07d}", "text": f"Document {i} is about topic {i % 97}. It has a second sentence."}
            out.write(json.dumps({"key": record["id"], "status": "succeeded", "path": "batch", "text": "An answer.",
                                  "usage": {"prompt_token_count": 15, "candidates_token_count": 4},
                                  "request_digest": request_digest("gemini-2.5-flash", spec.request(record, i)),
                                  "answered_at": "2026-12-01T00:00:00+00:00", "reused_from": None}) + "\n")
    store = AnswerStore(Location(str(store_folder), lambda: None))
    store.append(part)
    part.unlink()
    source = work / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records(100_000, 0)))
    log = logging.getLogger("reuse-benchmark")
    run_input = RunInput(str(source), spec)
    requests = [request for _, request in run_input.requests()]
    with AnswerIndex() as index:
        started = time.monotonic()
        store.read_into(index, work, log)
        loaded = time.monotonic() - started
        started = time.monotonic()  # the lookup alone: each request digested, then looked up in chunks
        found = 0
        for start in range(0, len(requests), LOOKUP_CHUNK):
            chunk = requests[start:start + LOOKUP_CHUNK]
            found += len(index.get_many([request_digest("gemini-2.5-flash", request) for request in chunk]))
        looked = time.monotonic() - started
        del requests
        started = time.monotonic()  # the whole pass: the input read, every request built, the reused rows written
        reuse = split_reused(run_input, "gemini-2.5-flash", index, work)
        split = time.monotonic() - started
    assert found == reuse.rows == 100_000 and reuse.sent == 0
    print(json.dumps({"stored_answers": args.stored, "rows_looked_up": 100_000,
                      "lookup_rows_per_s": round(100_000 / looked), "split_rows_per_s": round(100_000 / split),
                      "load_seconds": round(loaded, 2), "peak_rss_mb": peak_rss_mb()}), flush=True)


def child(mode: str, work: Path, env: dict[str, str], **options: object) -> dict[str, object]:
    command = [sys.executable, __file__, f"--{mode}", "--work", str(work)]
    for name, value in options.items():
        command += [f"--{name}", str(value)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{mode} {options} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--skip-nights", action="store_true", help="only the lookups")
    parser.add_argument("--skip-lookups", action="store_true", help="only the nights")
    parser.add_argument("--night", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--changed", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--lookups", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run-night", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_night:
        return night(args)
    if args.lookups:
        return lookups(args)

    with tempfile.TemporaryDirectory(prefix="gemini-reuse-") as folder:
        work = Path(folder)
        for stored in () if args.skip_lookups else (100_000, args.stored):
            print(json.dumps(child("lookups", work / f"lookups-{stored}", os.environ.copy(), stored=stored)),
                  flush=True)
        if args.skip_nights:
            return None
        from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread

        home = work / "airflow"
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
               "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "NO_PROXY": "127.0.0.1,localhost"}
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        nights = work / "nights"
        nights.mkdir()
        with EmulatorThread(EmulatorConfig(batch_pending_s=0, batch_running_s=0)) as emulator:
            env["AIRFLOW_CONN_GEMINI_DEFAULT"] = json.dumps(
                {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": emulator.base_url}})
            for number, changed in enumerate((None, 0.0, 1.0, 10.0), 1):
                before = _sent(emulator)
                jobs_before = _job_seconds(emulator)
                line = child("run-night", nights, env, rows=args.rows, night=number, changed=changed or 0.0)
                line["night"] = 1 if changed is None else 2
                line["changed_percent"] = None if changed is None else changed
                line["requests_sent"] = _sent(emulator) - before
                line["job_seconds"] = round(_job_seconds(emulator) - jobs_before, 2)
                print(json.dumps(line), flush=True)
    return None


def _sent(emulator) -> int:
    batches = emulator.state.store.batches.values()
    return sum(int(b.resource["batchStats"]["requestCount"]) for b in batches) + emulator.state.counters["ok"]


def _job_seconds(emulator) -> float:
    """The jobs' time between create and end, which the API decides (the emulator answers at once)."""
    from datetime import datetime

    total = 0.0
    for batch in emulator.state.store.batches.values():
        created, ended = batch.resource.get("createTime"), batch.resource.get("endTime")
        if created and ended:
            total += (datetime.fromisoformat(ended) - datetime.fromisoformat(created)).total_seconds()
    return total


if __name__ == "__main__":
    sys.exit(main())
