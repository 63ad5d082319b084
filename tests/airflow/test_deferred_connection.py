"""A deferred wait that could not read its connection is refused before anything is created, through
real Airflow (``dag.test()`` runs the trigger in the test's process, as ``airflow dags test`` does)."""

from __future__ import annotations

import json
import uuid

import pendulum
import pytest
from packaging.version import Version

from tests.conftest import API_KEY, RECORDS
from tests.dagbag import recording_failures, test_dag

pytestmark = pytest.mark.integration


@pytest.fixture
def stored_conn(airflow_db, emulator):
    """A ``gemini`` connection stored in the metadata database only (no environment variable), of a
    name no other test uses; deleted afterwards."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    conn_id = f"gemini_stored_{uuid.uuid4().hex[:8]}"
    with create_session() as session:
        session.add(Connection(conn_id=conn_id, conn_type="gemini", password=API_KEY,
                               extra=json.dumps({"base_url": emulator.base_url})))
    yield conn_id
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()


def test_a_connection_the_deferred_wait_cannot_read_creates_nothing(stored_conn, emulator, tmp_path):
    """Where the in-process trigger can't read a connection stored in the metadata database (Airflow
    3.3), the task fails before any upload, naming the connection and the fix; where it can, the
    run lands every row. Never a job created and then left waiting."""
    from airflow.sdk import DAG

    from airflow import __version__
    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    operator = recording_failures(GeminiBatchOperator)
    with DAG(dag_id="stored_connection", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        operator(task_id="summarize", records=RECORDS, key_field="id", prompt_template="Summarize: {text}",
                 output_path=str(tmp_path / "out.jsonl"), gemini_conn_id=stored_conn, deferrable=True,
                 poll_interval=0.2, reuse=False)
    state = test_dag(dag, tmp_path / "bag").state
    if state == "success":
        rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert sorted(r["key"] for r in rows) == sorted(r["id"] for r in RECORDS)
    else:
        assert f"the deferred wait could not read the connection '{stored_conn}'" in operator.errors[-1]
        assert f"AIRFLOW_CONN_{stored_conn.upper()}" in operator.errors[-1]
        assert API_KEY not in operator.errors[-1]
        assert emulator.state.counters["uploads"] == 0 and not emulator.state.store.batches
    if Version(__version__) >= Version("3.3"):  # the release whose in-process trigger can't read it
        assert state == "failed"
