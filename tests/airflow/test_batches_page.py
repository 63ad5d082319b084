"""The Gemini batches page's data (``gemini_batch_provider.plugins``) after real ``dag.test()`` runs
on two connections, the Gemini API and Vertex AI (emulated, with a Cloud Storage emulator), read
through the page's app with a token of Airflow's auth manager; and the live progress of running
jobs, kept a while. On Airflow 3.0 there is no page, and the plugin adds nothing."""

from __future__ import annotations

import json
import urllib.parse

import pendulum
import pytest
from packaging.version import Version

from airflow import __version__ as airflow_version
from gemini_batch_provider.plugins.plugin import GeminiBatchesPlugin
from tests.conftest import API_KEY, RECORDS, vertex_conn
from tests.dagbag import test_dag

pytestmark = pytest.mark.integration
PAGE = Version(airflow_version) >= Version("3.1")
needs_page = pytest.mark.skipif(not PAGE, reason="plugin pages need Airflow 3.1+")


@pytest.mark.skipif(PAGE, reason="Airflow 3.0 only")
def test_on_airflow_3_0_the_plugin_adds_nothing():
    assert GeminiBatchesPlugin.fastapi_apps == [] and getattr(GeminiBatchesPlugin, "external_views", []) == []


def _client(user_role: str = "admin"):
    from airflow.api_fastapi.app import create_auth_manager, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from gemini_batch_provider.plugins.app import app

    create_auth_manager()
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="someone", role=user_role))
    return TestClient(app), {"Authorization": f"Bearer {token}"}


@pytest.fixture
def two_connections(airflow_db, emulator, gcs, monkeypatch, tmp_path):
    """One DAG run of two batch tasks, on the Gemini API (``gemini_default``) and on Vertex AI
    (``gemini_vertex``); the run id."""
    from airflow.sdk import DAG

    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(
        {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": emulator.base_url}}))
    vertex_conn(monkeypatch, emulator, conn_id="gemini_vertex")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    common = {"input_path": str(source), "prompt_template": "Summarize: {text}", "key_field": "id",
              "poll_interval": 0.2, "deferrable": False}
    with DAG(dag_id="gemini_page_data", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        GeminiBatchOperator(task_id="gemini_api", output_path=str(tmp_path / "api.jsonl"), **common)
        GeminiBatchOperator(task_id="vertex_ai", output_path=str(tmp_path / "vertex.jsonl"),
                            gemini_conn_id="gemini_vertex", gcs_staging_uri="gs://bkt/staging", **common)
    dag_run = test_dag(dag, tmp_path / "no-dags")
    assert dag_run.state == "success"
    return dag_run.run_id


@needs_page
def test_the_page_lists_each_connections_jobs_with_rows_cost_and_totals(two_connections):
    client, auth = _client()
    assert client.get("/api/batches").status_code == 401
    answer = client.get("/api/batches?dag_id=gemini_page_data", headers=auth)
    assert answer.status_code == 200
    data = answer.json()
    rows = {row["task_id"]: row for row in data["rows"] if row["run_id"] == two_connections}
    assert rows.keys() == {"gemini_api", "vertex_ai"}
    api, vertex = rows["gemini_api"], rows["vertex_ai"]
    assert (api["conn_id"], vertex["conn_id"]) == ("gemini_default", "gemini_vertex")
    assert api["link"] == "https://aistudio.google.com/batches"
    assert vertex["link"].startswith("https://console.cloud.google.com/vertex-ai/")
    for row in (api, vertex):
        assert row["state"] == "success" and row["rows"] == len(RECORDS)
        assert row["counts"]["succeeded"] == len(RECORDS) and row["cost_usd"] > 0 and row["tokens"] > 0
        assert row["jobs"] and all(job["progress"] is None for job in row["jobs"])  # ended: not asked again
        assert row["submitted_at"] <= row["landed_at"]
    assert data["totals"]["rows"] == 2 * len(RECORDS) and data["totals"]["jobs_in_flight"] == 0
    assert data["totals"]["cost_usd"] == pytest.approx(api["cost_usd"] + vertex["cost_usd"], abs=1e-6)
    assert data["cost_per_day"][-1]["cost_usd"] == pytest.approx(data["totals"]["cost_usd"], abs=1e-6)
    assert API_KEY not in answer.text and "private_key" not in answer.text  # no secret of either connection
    assert client.get("/api/batches?dag_id=gemini_page_data&state=failed", headers=auth).json()["rows"] == []


@needs_page
def test_live_progress_comes_through_either_connection_and_is_kept_a_while(two_connections, emulator, tmp_path):
    from gemini_batch_provider.hooks.gemini import GeminiHook
    from gemini_batch_provider.plugins.live import LiveProgress

    client, auth = _client()
    rows = {row["task_id"]: row for row in client.get("/api/batches", headers=auth).json()["rows"]
            if row["run_id"] == two_connections}
    now = [0.0]
    live = LiveProgress(ttl=15, clock=lambda: now[0])
    ended = live.progress("gemini_vertex", rows["vertex_ai"]["jobs"][0]["name"])  # Vertex AI's completionStats
    assert ended["state"] == "JOB_STATE_SUCCEEDED" and ended["succeeded"] == len(RECORDS)

    emulator.configure("batches", outcome="stall")  # RUNNING until cancelled
    hook = GeminiHook("gemini_default")
    request = tmp_path / "one.jsonl"
    request.write_text(json.dumps({"key": "a", "request": {"contents": [{"parts": [{"text": "Hi."}]}]}}) + "\n")
    uploaded = hook.upload_file(request, display_name="in")
    job = hook.create_batch_job("gemini-2.5-flash", src=uploaded.name, display_name="stalled")
    running = live.progress("gemini_default", job.name)
    assert running["state"] in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING") and running["requests"] == 1
    hook.cancel_batch_job(job.name)
    assert live.progress("gemini_default", job.name) == running  # kept: not asked again within the ttl
    now[0] = 16.0
    assert live.progress("gemini_default", job.name)["state"] == "JOB_STATE_CANCELLED"
    assert live.progress("no_such_connection", job.name) == {"error": "AirflowNotFoundException"}



def test_a_changed_connection_is_read_again_after_the_refresh_interval(emulator, monkeypatch, tmp_path):
    from gemini_batch_provider.hooks.gemini import GeminiHook
    from gemini_batch_provider.plugins.live import LiveProgress

    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_MOVING", json.dumps(
        {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": emulator.base_url}}))
    emulator.configure("batches", outcome="stall")
    hook = GeminiHook("gemini_moving")
    request = tmp_path / "one.jsonl"
    request.write_text(json.dumps({"key": "a", "request": {"contents": [{"parts": [{"text": "Hi."}]}]}}) + "\n")
    job = hook.create_batch_job("gemini-2.5-flash", src=hook.upload_file(request, display_name="in").name,
                                display_name="moving").name
    now = [0.0]
    live = LiveProgress(ttl=15, clock=lambda: now[0])
    assert live.progress("gemini_moving", job)["state"].startswith("JOB_STATE_")
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_MOVING", json.dumps(  # the API moved, nothing listens where it was
        {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": "http://127.0.0.1:9"}}))
    now[0] = 16.0
    assert "error" in live.progress("gemini_moving", job)  # asked where the connection now points


def test_a_page_load_asks_each_running_job_once_and_a_slow_api_never_holds_it(monkeypatch, tmp_path):
    """Jobs are asked concurrently, each once however often listed; a page load waits ``timeout`` at
    most, showing no progress for a job the API has not answered yet, which the next load shows."""
    from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread
    from gemini_batch_provider.hooks.gemini import GeminiHook
    from gemini_batch_provider.plugins.live import LiveProgress

    with EmulatorThread(EmulatorConfig(batch_get_latency_s=2.0, batch_outcome="stall")) as emu:
        conn = {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": emu.base_url}}
        monkeypatch.setenv("AIRFLOW_CONN_GEMINI_SLOW", json.dumps(conn))
        hook = GeminiHook("gemini_slow")
        request = tmp_path / "one.jsonl"
        request.write_text(json.dumps({"key": "a", "request": {"contents": [{"parts": [{"text": "Hi."}]}]}}) + "\n")
        uploaded = hook.upload_file(request, display_name="in")
        names = [hook.create_batch_job("gemini-2.5-flash", src=uploaded.name, display_name=f"job {i}").name
                 for i in range(3)]
        live = LiveProgress()
        asked = [("gemini_slow", name) for name in names] * 2  # the same jobs under two tasks
        assert live.progress_of(asked, timeout=0.1) == {job: {"error": "TimeoutError"} for job in asked}
        later = live.progress_of(asked, timeout=60)
        assert sorted(later) == sorted(set(asked))
        assert {answer["state"] for answer in later.values()} <= {"JOB_STATE_PENDING", "JOB_STATE_RUNNING"}


def _recorded(tmp_path, tasks):
    """One run of a new DAG whose tasks push what a batch task pushes, as given: ``{task_id: (record,
    summary)}`` (any JSON: an XCom is any task's to write). The DAG's id and the run's."""
    import uuid

    from airflow.sdk import DAG, task

    from gemini_batch_provider.core.summary import JOBS_XCOM_KEY

    dag_id = f"gemini_page_records_{uuid.uuid4().hex[:8]}"  # its own: no other test's records in its totals
    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        for task_id, (record, summary) in tasks.items():
            @task(task_id=task_id)
            def push(record=record, summary=summary, ti=None):
                ti.xcom_push(key=JOBS_XCOM_KEY, value=record)
                return summary

            push()
    dag_run = test_dag(dag, tmp_path / "no-dags")
    assert dag_run.state == "success"
    return dag_id, dag_run.run_id


GOOD = ({"conn_id": "gemini_default", "model": "gemini-2.5-flash", "batch_jobs": ["batches/good1"],
         "link": "https://aistudio.google.com/batches", "output_path": "/data/out.jsonl", "estimated_cost_usd": 0.5,
         "submitted_at": 1_700_000_000.0},
        {"rows": 40, "counts": {"succeeded": 40}, "usage": {"prompt_token_count": 400}, "cost_usd": 0.25})


@needs_page
def test_a_malformed_record_is_shown_as_such_and_the_rest_answer(airflow_db, tmp_path):
    dag_id, run_id = _recorded(tmp_path, {
        "good": GOOD,
        "text_numbers": ({**GOOD[0], "batch_jobs": 7, "estimated_cost_usd": "0.5"}, {**GOOD[1], "rows": "40"}),
        "not_a_dict": (["batches/x"], "forty"),
        "bad_submitter": ({**GOOD[0], "submitted_by": "submit"}, GOOD[1]),
    })
    client, auth = _client()
    answer = client.get(f"/api/batches?dag_id={dag_id}", headers=auth)
    assert answer.status_code == 200
    rows = {row["task_id"]: row for row in answer.json()["rows"] if row["run_id"] == run_id}
    assert rows["good"]["withheld"] is None and rows["good"]["rows"] == 40
    for bad in ("text_numbers", "not_a_dict", "bad_submitter"):
        assert rows[bad]["withheld"] == "malformed record"
        assert (rows[bad]["jobs"], rows[bad]["rows"], rows[bad]["estimated_cost_usd"]) == ([], None, None)
    totals = answer.json()["totals"]
    assert (totals["records"], totals["withheld"], totals["rows"], totals["cost_usd"]) == (4, 3, 40, 0.25)


@needs_page
def test_reused_rows_and_what_they_saved_are_shown_and_totalled(airflow_db, tmp_path):
    partly = {**GOOD[1], "rows_by_path": {"reused": 30, "batch": 10}, "saved_cost_usd": 0.75}
    dag_id, run_id = _recorded(tmp_path, {
        "partly": (GOOD[0], partly),
        "before_reuse": GOOD,  # a summary of a release that had no reuse
        "bad_count": (GOOD[0], {**partly, "rows_by_path": {"reused": "30"}}),
    })
    client, auth = _client()
    answer = client.get(f"/api/batches?dag_id={dag_id}", headers=auth).json()
    rows = {row["task_id"]: row for row in answer["rows"] if row["run_id"] == run_id}
    assert (rows["partly"]["reused"], rows["partly"]["saved_cost_usd"]) == (30, 0.75)
    assert (rows["before_reuse"]["reused"], rows["before_reuse"]["saved_cost_usd"]) == (0, None)
    assert rows["bad_count"]["withheld"] == "malformed record" and rows["bad_count"]["reused"] is None
    assert (answer["totals"]["reused"], answer["totals"]["saved_cost_usd"]) == (30, 0.75)


@needs_page
def test_only_console_links_the_provider_builds_are_sent(airflow_db, tmp_path):
    vertex = "https://console.cloud.google.com/vertex-ai/batch-predictions?project=p"
    links = {"ai_studio": "https://aistudio.google.com/batches", "vertex": vertex,
             "evil": "https://evil.example/vertex-ai/x", "javascript": "javascript:alert(1)",
             "lookalike": "https://console.cloud.google.com.evil.example/vertex-ai/x",
             "userinfo": "https://aistudio.google.com@evil.example/batches"}
    _, run_id = _recorded(tmp_path, {name: ({**GOOD[0], "link": link}, GOOD[1]) for name, link in links.items()})
    client, auth = _client()
    rows = {row["task_id"]: row for row in client.get("/api/batches", headers=auth).json()["rows"]
            if row["run_id"] == run_id}
    assert {name: row["link"] for name, row in rows.items()} == {
        "ai_studio": links["ai_studio"], "vertex": vertex, "evil": None, "javascript": None, "lookalike": None,
        "userinfo": None}


@needs_page
def test_a_job_name_of_no_jobs_shape_is_marked_invalid_and_never_requested(airflow_db, tmp_path, monkeypatch):
    import http.server
    import threading

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import update

    asked = []

    class Recording(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # every path asked, answered as the API answers an unknown job
            asked.append(self.path.split("?")[0])
            body = b'{"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_RECORDED", json.dumps(
        {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": f"http://127.0.0.1:{server.server_port}"}}))
    names = ["../../v1beta/files", "batches/abc/../../files", "projects/p/locations/l/batchPredictionJobs/9/x",
             "batches/real1"]
    dag_id, run_id = _recorded(tmp_path, {"in_flight": ({**GOOD[0], "conn_id": "gemini_recorded",
                                                          "batch_jobs": names}, None)})
    with create_session() as session:  # as while its jobs run
        session.execute(update(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
                        .values(state="deferred"))
    client, auth = _client()
    try:
        [row] = client.get(f"/api/batches?dag_id={dag_id}", headers=auth).json()["rows"]
    finally:
        server.shutdown()
    assert [(job["name"], job["valid"]) for job in row["jobs"]] == [(name, name == "batches/real1") for name in names]
    assert [job["progress"] for job in row["jobs"][:3]] == [None, None, None]
    assert row["jobs"][3]["progress"] == {"error": "ClientError"}
    assert asked == ["/v1beta/batches/real1"]  # only the name with a job's shape was asked of the API



@needs_page
def test_a_run_and_a_task_instance_each_get_a_view_of_their_own_batch(airflow_db, tmp_path):
    """The "Gemini batch" tabs (external views on a DAG run and a task instance, Airflow filling in
    the placeholders) open the page scoped by its address; the API answers that run's or task's rows."""
    views = {view["destination"]: view for view in GeminiBatchesPlugin.external_views}
    assert views["nav"]["href"] == "/gemini-batches/"
    assert views["task_instance"]["href"] == (
        "/gemini-batches/?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}")
    assert views["dag_run"]["href"] == "/gemini-batches/?dag_id={DAG_ID}&run_id={RUN_ID}"
    second = ({**GOOD[0], "batch_jobs": ["batches/two"]}, GOOD[1])
    dag_id, run_id = _recorded(tmp_path, {"first": GOOD, "second": second})
    client, auth = _client()

    def shown(query: str) -> list[tuple[str, str]]:
        answer = client.get(f"/api/batches?dag_id={dag_id}&{query}", headers=auth).json()
        assert answer["refresh_seconds"] > 0  # how often the page asks again
        return sorted((row["task_id"], row["jobs"][0]["name"]) for row in answer["rows"])

    run_query = urllib.parse.urlencode({"run_id": run_id})
    assert shown(run_query) == [("first", "batches/good1"), ("second", "batches/two")]
    assert shown(f"{run_query}&task_id=second&map_index=-1") == [("second", "batches/two")]
    assert shown(f"{run_query}&task_id=second&map_index=3") == []
    assert shown(urllib.parse.urlencode({"run_id": "manual__another_run"})) == []



@needs_page
def test_a_split_submit_and_results_pair_is_one_batch_naming_both_tasks(airflow_db, emulator, monkeypatch, tmp_path):
    """Submitted by one task, waited on by a sensor and landed by another: one row, under the landing
    task, naming the submitting one, with the estimate and submission time of the one and the rows
    and cost of the other. While only the submit task has run, its row is in flight."""
    from airflow.sdk import DAG

    from gemini_batch_provider.operators.results import GeminiBatchResultsOperator
    from gemini_batch_provider.operators.submit import GeminiSubmitBatchOperator
    from gemini_batch_provider.sensors.batch import GeminiBatchJobSensor

    # A connection of its own: the page keeps each connection's hook a while, and other tests'
    # gemini_default pointed at their own emulators.
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_SPLIT", json.dumps(
        {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": emulator.base_url}}))
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))

    def run(dag_id: str, land: bool) -> str:
        common = {"input_path": str(source), "prompt_template": "Summarize: {text}", "key_field": "id",
                  "output_path": str(tmp_path / f"{dag_id}.jsonl"), "gemini_conn_id": "gemini_split"}
        with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
            submit = GeminiSubmitBatchOperator(task_id="submit", **common)
            if land:
                wait = GeminiBatchJobSensor(task_id="wait", job_names=submit.output, poke_interval=0.2,
                                            gemini_conn_id="gemini_split")
                submit >> wait >> GeminiBatchResultsOperator(task_id="land", job_names=submit.output, **common)
        dag_run = test_dag(dag, tmp_path / dag_id)
        assert dag_run.state == "success"
        return dag_run.run_id

    client, auth = _client()
    submitted_only = run("gemini_page_submitted", land=False)
    [row] = client.get("/api/batches?dag_id=gemini_page_submitted", headers=auth).json()["rows"]
    assert (row["run_id"], row["task_id"], row["submitted_by"], row["in_flight"]) == (
        submitted_only, "submit", None, True)
    assert row["jobs"][0]["progress"]["state"].startswith("JOB_STATE_")  # asked while nothing landed them
    assert row["cost_usd"] is None and row["estimated_cost_usd"] > 0

    landed = run("gemini_page_split", land=True)
    answer = client.get("/api/batches?dag_id=gemini_page_split", headers=auth).json()
    [row] = answer["rows"]
    assert (row["run_id"], row["task_id"], row["submitted_by"], row["in_flight"]) == (landed, "land", "submit", False)
    assert row["rows"] == len(RECORDS) and row["counts"]["succeeded"] == len(RECORDS)
    assert row["cost_usd"] > 0 and row["estimated_cost_usd"] > 0 and row["submitted_at"] <= row["landed_at"]
    assert len(row["jobs"]) == 1 and len(emulator.state.store.batches) == 2  # one job for each DAG's run
    assert answer["totals"]["records"] == 1 and answer["totals"]["jobs_in_flight"] == 0


@needs_page
def test_parameters_the_database_could_refuse_are_422_and_every_answer_carries_the_security_headers(airflow_db):
    client, auth = _client()
    for query in ("dag_id=%00", "state=%00", "dag_id=a%00b", "dag_id=a b", "state=bogus", f"dag_id={'d' * 251}",
                  "run_id=a%00b", "run_id=a%0Ab", "task_id=a b", "map_index=-2", "map_index=x"):
        assert client.get(f"/api/batches?{query}", headers=auth).status_code == 422, query
    assert client.get("/api/batches?dag_id=some.dag-1&state=deferred", headers=auth).status_code == 200
    scoped = "dag_id=d&run_id=manual__2026-12-06T07:46:03.061312%2B00:00&task_id=t.1&map_index=-1"
    assert client.get(f"/api/batches?{scoped}", headers=auth).status_code == 200
    for path, kind in (("/", "text/html"), ("/page.js", "text/javascript"), ("/page.css", "text/css"),
                       ("/api/batches", "application/json")):
        answer = client.get(path, headers=auth)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "SAMEORIGIN"
    page = client.get("/").text
    assert "<script src=\"page.js\">" in page and "<script>" not in page and "style=" not in page
