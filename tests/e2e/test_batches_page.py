"""The Gemini batches page (``gemini_batch_provider.plugins``) on a real Airflow API server: its JSON
as a signed-in user, refused to anyone else, listing a landed run with its rows and cost and a
running job with its progress, which moves."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from stack import Stack  # noqa: E402

from airflow import __version__ as airflow_version  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(Version(airflow_version) < Version("3.1"),
                                                  reason="plugin pages need Airflow 3.1+")]

DAG_ID = "gemini_faults"
ROWS = [{"id": f"row-{i}", "text": f"Row {i} talks about topic {i % 7}."} for i in range(40)]
API = "/gemini-batches/api/batches"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # Jobs run 20 s, answering their requests one by one meanwhile: long enough to watch one run.
    # Signed-in users only (not the other tests' all-admins stack): an admin runs the DAGs.
    with Stack(tmp_path_factory.mktemp("airflow"), dags_folder=Path(__file__).parent / "dags",
               emulator_args=("--batch-pending-seconds", "1", "--batch-running-seconds", "20"),
               users={"admin": "admin", "viewer": "viewer"},
               env={"AIRFLOW__GEMINI_BATCH__PAGE_REFRESH_SECONDS": "1"}) as running:
        running.wait_for_dag(DAG_ID)
        yield running


def _start(stack, name):
    source, output = stack.home / f"{name}.jsonl", stack.home / "results" / f"{name}.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return stack.trigger(DAG_ID, conf={"in": str(source), "out": str(output)})


def _row(stack, run_id):
    found = [row for row in stack.get(API)["rows"] if row["run_id"] == run_id]
    return found[0] if found else None


def _status(stack, path, headers=None):
    request = urllib.request.Request(f"{stack.api_url}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_data_is_refused_without_a_valid_token_and_the_page_holds_none(stack):
    assert _status(stack, API) == 401
    assert _status(stack, API, {"Authorization": "Bearer not-a-token"}) == 403
    assert _status(stack, API, {"Cookie": "_token=not-a-token"}) == 403
    assert _status(stack, API, {"Authorization": f"Bearer {stack.token('viewer')}"}) == 200
    assert _status(stack, API, {"Cookie": f"_token={stack.token('viewer')}"}) == 200  # the UI's way
    with urllib.request.urlopen(f"{stack.api_url}/gemini-batches/", timeout=30) as answer:
        page = answer.read().decode()
    assert "api/batches" in page and "emulator" not in page  # the script, no data


def test_a_running_job_shows_its_progress_moving_then_its_landed_rows_and_cost(stack):
    run_id = _start(stack, "page")
    seen = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        row = _row(stack, run_id)
        progress = row and row["jobs"] and row["jobs"][0]["progress"]
        if progress and "error" not in progress and progress["state"] == "JOB_STATE_RUNNING":
            seen.append(progress["succeeded"])
            if seen[-1] > seen[0] and seen[-1] < len(ROWS):
                break
        time.sleep(1)
    assert seen and seen[-1] > seen[0], f"no running job's progress moved: {seen}"
    assert progress["requests"] == len(ROWS) and 0 < progress["percent"] < 100
    assert row["estimated_cost_usd"] > 0 and row["cost_usd"] is None  # the estimate until landed
    assert row["model"] == "gemini-2.5-flash" and row["link"].startswith("https://aistudio.google.com/")

    assert stack.wait_for_run(DAG_ID, run_id, timeout=300)["state"] == "success"
    row = _row(stack, run_id)
    assert row["state"] == "success" and row["rows"] == len(ROWS) and row["counts"]["succeeded"] == len(ROWS)
    assert row["cost_usd"] > 0 and row["tokens"] > 0 and row["jobs"][0]["progress"] is None
    assert row["output_path"].endswith("results/page.jsonl")
    data = stack.get(API)
    assert data["totals"]["rows"] >= len(ROWS) and data["totals"]["cost_usd"] >= row["cost_usd"]
    today = data["cost_per_day"][-1]
    assert today["cost_usd"] >= row["cost_usd"]
    assert "emulator-demo-key" not in json.dumps(data)  # the connection's key, nowhere
