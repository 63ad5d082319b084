"""Waves: a night of more shards than the project's batch quota holds, through real Airflow.

``--shards`` shards (20) of ``--rows-per-shard`` rows, against an emulator whose enqueued-token limit
holds 4 of them at once, its jobs taking ``--job-seconds`` each; ``GeminiBatchOperator`` runs them
in ``dag.test()`` (deferrable: Airflow's own deferral loop runs the trigger). Two runs: the task
told the limit (``max_enqueued_tokens``, its own estimate of 4 shards), and the task not told,
learning it from the API's 429 on create. One JSON line per run:

- ``jobs_created`` (by the emulator) against ``shards``, and ``rows_landed`` against ``rows_in``;
- ``refused_creates``: creates the emulator answered 429; ``most_jobs_at_once``;
- ``waves_seconds``: from the first job's create to the last job's end; ``ideal_seconds``: the sum
  of the wave durations (``ceil(shards / 4)`` waves of ``--job-seconds``); ``over_ideal``: their ratio;
- ``task_seconds``: the time the task's own code ran (``execute``, and each ``execute_complete``,
  in which the next waves are created and the rows land), the worker slot's time; ``deferrals``;
- ``wall_seconds``: the whole ``dag.test()`` run.

    .venv/bin/python benchmarks/waves.py [--shards 20] [--rows-per-shard 50] [--job-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
API_KEY = "waves-benchmark-key"
HOLDS = 4  # shards the enqueued-token limit holds at once


def write_input(path: Path, rows: int) -> None:
    """``rows`` records of one length, so that every shard weighs the same."""
    path.write_text("".join(json.dumps({"id": f"doc-{i:06d}", "text": f"Document {i:06d} is about topic {i % 97:02d}."})
                            + "\n" for i in range(rows)))


def shard_weights(source: Path, rows_per_shard: int, folder: Path) -> tuple[int, int]:
    """One shard's estimated tokens (the provider's estimate) and bytes (what the emulator counts)."""
    from gemini_batch_provider.core.limits import ShardLimits
    from gemini_batch_provider.core.plan import RunInput
    from gemini_batch_provider.core.requests import RequestSpec
    from gemini_batch_provider.core.shards import write_shards

    run_input = RunInput(str(source), RequestSpec("Summarize: {text}", key_field="id"))
    sharded = write_shards(run_input.requests(), folder, ShardLimits(max_requests=rows_per_shard, max_tokens=10**12),
                           model="gemini-2.5-flash")
    return max(s.tokens for s in sharded.shards), max(s.size_bytes for s in sharded.shards)


def run(args: argparse.Namespace, work: Path, emulator, told: bool, tokens: int) -> dict[str, object]:
    """One night through ``dag.test()``: its JSON figures."""
    import pendulum
    from airflow.sdk import DAG
    from tests.dagbag import test_dag

    from timed import TimedBatchOperator

    TimedBatchOperator.reset()
    name = "told" if told else "not_told"
    output = work / f"results-{name}.jsonl"
    quota = {"max_enqueued_tokens": HOLDS * tokens + tokens // 2} if told else {}
    with DAG(dag_id=f"waves_{name}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        TimedBatchOperator(task_id="night", input_path=str(work / "night.jsonl"), key_field="id",
                           output_path=str(output), prompt_template="Summarize: {text}", reuse=False,
                           max_requests_per_job=args.rows_per_shard, count_tokens_sample=0, deferrable=True,
                           poll_interval=0.5, max_poll_interval=1.0, **quota)
    folder = work / f"dags-{name}"
    folder.mkdir()
    before = set(emulator.state.store.batches)
    refused = emulator.state.counters["429"]
    started = time.monotonic()
    dag_run = test_dag(dag, folder)
    wall = time.monotonic() - started
    assert dag_run.state == "success", dag_run.state
    jobs = [b.resource for key, b in emulator.state.store.batches.items() if key not in before]
    created = [pendulum.parse(job["createTime"]).timestamp() for job in jobs]
    ended = [pendulum.parse(job["endTime"]).timestamp() for job in jobs]
    keys = [json.loads(line)["key"] for line in output.read_text().splitlines()]
    ideal = math.ceil(args.shards / HOLDS) * args.job_seconds
    span = max(ended) - min(created)
    return {"run": f"the task {'told' if told else 'not told'} the limit", "shards": args.shards,
            "jobs_created": len(jobs), "distinct_display_names": len({job["displayName"] for job in jobs}),
            "rows_in": args.shards * args.rows_per_shard, "rows_landed": len(keys), "distinct_keys": len(set(keys)),
            "refused_creates": emulator.state.counters["429"] - refused,
            "most_jobs_at_once": most_at_once(created, ended), "waves_seconds": round(span, 2),
            "ideal_seconds": ideal, "over_ideal": round(span / ideal, 3), "within_10_percent": span <= 1.1 * ideal,
            "task_seconds": round(TimedBatchOperator.own_seconds, 2), "deferrals": TimedBatchOperator.resumes,
            "wall_seconds": round(wall, 2)}


def most_at_once(created: list[float], ended: list[float]) -> int:
    """The most jobs unfinished at one moment (an end counts before a create at the same moment)."""
    most = now = 0
    for _, step in sorted([(t, 1) for t in created] + [(t, -1) for t in ended]):
        now += step
        most = max(most, now)
    return most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--rows-per-shard", type=int, default=50)
    parser.add_argument("--job-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gemini-waves-") as folder:
        work = Path(folder)
        home = work / "airflow"
        os.environ.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
                           "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "NO_PROXY": "127.0.0.1,localhost"})
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        sys.path.insert(0, str(REPO))
        from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread

        write_input(work / "night.jsonl", args.shards * args.rows_per_shard)
        (work / "shards").mkdir()
        tokens, size = shard_weights(work / "night.jsonl", args.rows_per_shard, work / "shards")
        emulated = size // 4  # the emulator's estimate of a job's tokens: about 4 bytes a token
        config = EmulatorConfig(batch_pending_s=1.0, batch_running_s=args.job_seconds - 1.0,
                                max_enqueued_tokens=HOLDS * emulated + emulated // 2)
        with EmulatorThread(config) as emulator:
            os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"] = json.dumps(
                {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": emulator.base_url}})
            for told in (True, False):
                print(json.dumps(run(args, work, emulator, told, tokens)), flush=True)


if __name__ == "__main__":
    main()
