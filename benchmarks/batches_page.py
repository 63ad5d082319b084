"""How fast the Gemini batches page's JSON answers with many batch jobs recorded.

A DAG whose one task pushes what a batch task pushes (the jobs record at submit, the summary once
landed) runs once through ``dag.test()`` on a fresh SQLite metadata database; its task instance and
XComs are then copied ``--jobs`` times (one task instance each, spread over 30 days), and the page's
app (``gemini_batch_provider.plugins.app``, with Airflow's auth manager) answers
``GET /api/batches`` in-process ``--repeat`` times, as a signed-in admin. Prints one JSON object:
``jobs``, ``rows_returned``, ``median_ms``, ``p95_ms``, ``max_ms``, ``filtered_median_ms`` (one
DAG and state filtered).

    .venv/bin/python benchmarks/batches_page.py [--jobs 10000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _environment() -> Path:
    home = Path(tempfile.mkdtemp(prefix="gemini-batches-page-"))
    os.environ.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    })
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return home


def _one_run(home: Path) -> None:
    """One real run of a task that pushes what a GeminiBatchOperator pushes."""
    import pendulum
    from airflow.sdk import DAG, task
    from tests.dagbag import test_dag

    from gemini_batch_provider.core.summary import JOBS_XCOM_KEY, jobs_record

    with DAG(dag_id="page_benchmark", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        @task
        def batch(ti=None):
            ti.xcom_push(key=JOBS_XCOM_KEY, value=jobs_record(
                "gemini_default", "gemini-3-flash-preview", ["batches/abc"], "https://aistudio.google.com/batches",
                "/data/results.jsonl", 0.25, time.time()))
            counts = {"succeeded": 500, "failed": 0, "invalid_output": 0, "missing": 0, "expired": 0, "cancelled": 0}
            return {"rows": 500, "counts": counts, "usage": {"prompt_token_count": 50000,
                    "candidates_token_count": 20000}, "path": "batch", "rows_by_path": {"batch": 500},
                    "batch_jobs": ["batches/abc"], "output_path": "/data/results.jsonl",
                    "model": "gemini-3-flash-preview", "estimated_cost_usd": 0.25, "cost_usd": 0.2}

        batch()
    assert test_dag(dag, home / "no-dags").state == "success"


def _copy(jobs: int) -> None:
    """``jobs`` task instances in all, each with the two XComs, pushed over the last 30 days."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import insert, select

    with create_session() as session:
        [ti] = [dict(row._mapping) for row in session.execute(select(TaskInstance.__table__))]
        xcoms = [dict(row._mapping) for row in session.execute(select(XComModel.__table__))]
        now = datetime.now(UTC)
        tis, copies = [], []
        for index in range(1, jobs):
            tis.append({**ti, "id": uuid.uuid4(), "map_index": index})
            pushed = now - timedelta(days=index % 30, seconds=index)
            copies.extend({**xcom, "map_index": index, "timestamp": pushed} for xcom in xcoms)
        session.execute(insert(TaskInstance.__table__), tis)
        session.execute(insert(XComModel.__table__), copies)


def _timings(repeat: int) -> dict[str, float | int]:
    from airflow.api_fastapi.app import create_auth_manager, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from gemini_batch_provider.plugins.app import app

    create_auth_manager()
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})

    def timed(path: str) -> tuple[list[float], dict]:
        seconds, answer = [], {}
        for _ in range(repeat):
            start = time.perf_counter()
            response = client.get(path)
            seconds.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
            answer = response.json()
        return sorted(seconds), answer

    everything, answer = timed("/api/batches")
    filtered, _ = timed("/api/batches?dag_id=page_benchmark&state=success&days=7")
    return {"records": answer["totals"]["records"], "rows_returned": len(answer["rows"]),
            "median_ms": round(statistics.median(everything), 1),
            "p95_ms": round(everything[int(0.95 * (len(everything) - 1))], 1), "max_ms": round(everything[-1], 1),
            "filtered_median_ms": round(statistics.median(filtered), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    home = _environment()
    _one_run(home)
    _copy(args.jobs)
    print(json.dumps({"jobs": args.jobs, **_timings(args.repeat)}))


if __name__ == "__main__":
    main()
