"""The same rows through common.ai's ``@task.llm_batch`` (this provider's ``GeminiBatchAdapter``) and
through ``GeminiBatchOperator``, side by side, against the emulator.

Each side runs in a process of its own: a DAG of the one task through Airflow's ``dag.test()`` on a
SQLite metadata database, an emulator in the same process. Prints one JSON object per side:
``side``, ``rows`` (results rows landed), ``succeeded``, ``jobs`` (batch jobs created),
``wall_s`` (the DAG run), ``peak_rss_mb`` (the process's peak resident memory).

    .venv/bin/python benchmarks/common_ai.py [--rows N]

Needs the ``common-ai`` extra (``scripts/setup.sh`` installs it).
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
SIDES = ("llm_batch", "gemini_batch_operator")
MODEL = "gemini-3-flash-preview"
API_KEY = "benchmark-key"
MARK = "FIGURES "  # the line of a side's figures among what Airflow prints


def _prompt(index: int) -> str:
    return (f"Document {index} reports on topic {index % 97}. It has a few sentences of prose, as the rows "
            f"of a nightly batch do. The third sentence says that number {index} is neither first nor last.")


def run_side(side: str, rows: int) -> dict[str, object]:
    """One side's run, in this process (``main`` gives each side a process of its own)."""
    home = tempfile.mkdtemp(prefix="gemini-common-ai-bench-")
    os.environ.update({"AIRFLOW_HOME": home, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
                       "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": f"{home}/dags",
                       "NO_PROXY": "127.0.0.1,localhost"})
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sys.path.insert(0, str(REPO))
    import pendulum
    from airflow.sdk import DAG, task
    from tests.dagbag import test_dag

    from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread
    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    prompts = [_prompt(i) for i in range(rows)]
    out = Path(home) / "out"
    # Jobs end as soon as they are made: common.ai polls every 30 s at the fastest, which would
    # otherwise be most of its wall time.
    with EmulatorThread(EmulatorConfig(batch_pending_s=0, batch_running_s=0)) as emulator:
        os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"] = json.dumps({
            "conn_type": "gemini", "password": API_KEY, "host": emulator.base_url,
            "extra": {"base_url": emulator.base_url}})
        with DAG(dag_id=side, schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
            if side == "llm_batch":
                @task.llm_batch(llm_conn_id="gemini_default", model_id=f"gemini:{MODEL}", result_path=str(out),
                                poll_interval=30)
                def build():
                    return prompts

                build()
            else:
                GeminiBatchOperator(task_id="batch", records=[{"prompt": p} for p in prompts],
                                    prompt_template="{prompt}", model=MODEL, output_path=str(out / "results.jsonl"),
                                    generation_config={"max_output_tokens": 1024}, poll_interval=1)
        started = time.monotonic()
        dag_run = test_dag(dag, Path(home) / "no-dags")
        wall = time.monotonic() - started
        jobs = len(emulator.state.store.batches)
    [ti] = dag_run.get_task_instances()
    landed_at = ti.xcom_pull(task_ids=ti.task_id)  # common.ai's manifest, or this provider's summary
    results = landed_at.get("result_uri", landed_at.get("output_path", "")).removeprefix("file://")
    with open(results) as lines:
        landed = [json.loads(line)["status"] for line in lines]
    ok = sum(status in ("success", "succeeded") for status in landed)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    return {"side": side, "state": str(dag_run.state), "rows": len(landed), "succeeded": ok, "jobs": jobs,
            "wall_s": round(wall, 1), "peak_rss_mb": round(peak_mb, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--side", choices=SIDES, help="run one side here (what main asks of each process)")
    args = parser.parse_args()
    if args.side:
        figures = run_side(args.side, args.rows)
        print(MARK + json.dumps(figures), flush=True)
        return
    for side in SIDES:
        found = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--side", side],
                               check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        figures = next(line for line in found.stdout.splitlines() if line.startswith(MARK))
        print(figures.removeprefix(MARK), flush=True)


if __name__ == "__main__":
    main()
