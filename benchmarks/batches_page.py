"""How fast the Gemini batches page's JSON answers with many batch jobs recorded, and with many in flight.

A DAG whose one task pushes what a batch task pushes (the jobs record at submit, the summary once
landed) runs once through ``dag.test()`` on a fresh metadata database (SQLite, or with
``--database postgresql`` a new database on the PostgreSQL server at 127.0.0.1:5432, dropped at
the end); its task instance and XComs are then copied ``--jobs`` times (one task instance each,
spread over 30 days; on PostgreSQL the tables are then analyzed, as autovacuum does after a bulk
load), and the page's app (``gemini_batch_provider.plugins.app``, with Airflow's
auth manager) answers ``GET /api/batches`` in-process ``--repeat`` times, as a signed-in admin.

Then ``--in-flight`` tasks are recorded as deferred, each waiting on a job of its own that runs on
the emulator (``--batch-get-latency`` seconds a job's GET, a round trip to the live API), and the
page is loaded once with none of their progress known (every job asked of the API), once again
within the refresh interval (none asked), and the same jobs are asked one after another, as the
page did before it asked them concurrently.

Prints one JSON object: ``database``, ``jobs``, ``rows_returned``, ``median_ms``, ``p95_ms``,
``max_ms``, ``filtered_median_ms`` (one DAG and state filtered), and under ``in_flight``: ``jobs``,
``batch_get_latency_s``, ``first_load_s``, ``cached_load_s``, ``one_after_another_s``,
``with_progress`` (jobs whose progress the first load showed).

    .venv/bin/python benchmarks/batches_page.py [--jobs 10000] [--repeat 20] [--database postgresql]
        [--in-flight 50] [--batch-get-latency 0.2]
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from stack import POSTGRES, postgres_admin  # noqa: E402


def _environment(database_url: str | None) -> Path:
    home = Path(tempfile.mkdtemp(prefix="gemini-batches-page-"))
    os.environ.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url or f"sqlite:///{home}/airflow.db",
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
    from sqlalchemy import insert, select, text

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
    if session.bind.dialect.name == "postgresql":
        # The planner's statistics of the tables just filled, as autovacuum gathers them within a
        # minute of a bulk load: without them it takes 10,000 rows for one and loops over them.
        with create_session() as session:
            session.execute(text("ANALYZE task_instance, xcom"))


def _client() -> Any:
    from airflow.api_fastapi.app import create_auth_manager, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from gemini_batch_provider.plugins.app import app

    create_auth_manager()
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def _timings(client: Any, repeat: int) -> dict[str, float | int]:
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


def _in_flight(client: Any, count: int, get_latency: float) -> dict[str, float | int]:
    """``count`` deferred tasks, each waiting on a stalled job of the emulator; the page loaded cold,
    then warm, and the same jobs asked one after another."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import insert, select

    from gemini_batch_provider.core.summary import JOBS_XCOM_KEY
    from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread
    from gemini_batch_provider.hooks.gemini import GeminiHook
    from gemini_batch_provider.plugins.live import LiveProgress

    with EmulatorThread(EmulatorConfig(batch_outcome="stall", batch_get_latency_s=get_latency)) as emu:
        os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"] = json.dumps(
            {"conn_type": "gemini", "password": "benchmark-key", "extra": {"base_url": emu.base_url}})
        hook = GeminiHook("gemini_default")
        requests = Path(tempfile.mkdtemp()) / "one.jsonl"
        requests.write_text(json.dumps({"key": "a", "request": {"contents": [{"parts": [{"text": "Hi."}]}]}}) + "\n")
        uploaded = hook.upload_file(requests, display_name="in")
        names = [hook.create_batch_job("gemini-2.5-flash", src=uploaded.name, display_name=f"job {i}").name
                 for i in range(count)]
        with create_session() as session:
            ti = dict(session.execute(select(TaskInstance.__table__)).first()._mapping)
            record = dict(session.execute(select(XComModel.__table__).where(
                XComModel.key == JOBS_XCOM_KEY)).first()._mapping)
            value = json.loads(record["value"]) if isinstance(record["value"], str) else record["value"]
            tis, xcoms = [], []
            for index, name in enumerate(names, start=10_000_000):
                tis.append({**ti, "id": uuid.uuid4(), "map_index": index, "state": "deferred"})
                job = {**value, "batch_jobs": [name], "conn_id": "gemini_default", "submitted_at": time.time()}
                xcoms.append({**record, "map_index": index, "timestamp": datetime.now(UTC),
                              "value": json.dumps(job) if isinstance(record["value"], str) else job})
            session.execute(insert(TaskInstance.__table__), tis)
            session.execute(insert(XComModel.__table__), xcoms)

        def load() -> tuple[float, int]:
            start = time.perf_counter()
            response = client.get("/api/batches?state=deferred&limit=1000")
            seconds = time.perf_counter() - start
            response.raise_for_status()
            jobs = [job for row in response.json()["rows"] for job in row["jobs"]]
            return seconds, sum(bool(job["progress"]) and "state" in job["progress"] for job in jobs)

        first, with_progress = load()
        cached, _ = load()
        one_by_one = LiveProgress()
        start = time.perf_counter()
        for name in names:
            one_by_one.progress("gemini_default", name)
        sequential = time.perf_counter() - start
    return {"jobs": count, "batch_get_latency_s": get_latency, "first_load_s": round(first, 2),
            "cached_load_s": round(cached, 3), "one_after_another_s": round(sequential, 2),
            "with_progress": with_progress}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--batch-get-latency", type=float, default=0.2)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    database = f"gemini_page_bench_{uuid.uuid4().hex[:8]}" if args.database == "postgresql" else None
    if database:
        postgres_admin(f"CREATE DATABASE {database}")
    try:
        home = _environment(f"{POSTGRES.replace('postgresql', 'postgresql+psycopg2')}/{database}" if database else None)
        _one_run(home)
        _copy(args.jobs)
        client = _client()
        figures = {"database": args.database, "jobs": args.jobs, **_timings(client, args.repeat)}
        figures["in_flight"] = _in_flight(client, args.in_flight, args.batch_get_latency)
    finally:
        if database:
            from airflow.settings import dispose_orm

            dispose_orm()  # its connections closed, so that the database can be dropped
            postgres_admin(f"DROP DATABASE IF EXISTS {database}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
