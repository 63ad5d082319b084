"""Media rows (images, documents) on both paths, through Airflow (``dag.test()``) and the real SDK
against the emulator: inline and uploaded media, URLs, dedupe, cleanup, retries and bad media."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from gemini_batch_provider.operators.batch import GeminiBatchOperator
from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator
from tests.conftest import run_dag, vertex_conn

pytestmark = pytest.mark.integration

SKIMAGE_DATA = Path(__import__("skimage").__file__).parent / "data"
QUESTION = "Describe the photo in one sentence."


@pytest.fixture
def web_server(tmp_path):
    """An HTTP server for ``tmp_path/web`` on a free port; yields its base URL."""
    folder = tmp_path / "web"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()


def _photo_records(web_server):
    url, folder = web_server
    (folder / "rocket.jpg").write_bytes((SKIMAGE_DATA / "rocket.jpg").read_bytes())
    return [
        {"id": "astronaut", "question": QUESTION, "photo": str(SKIMAGE_DATA / "astronaut.png")},  # 792 kB: uploaded
        {"id": "coffee", "question": QUESTION, "photo": str(SKIMAGE_DATA / "coffee.png")},  # 467 kB: uploaded
        {"id": "coffee-again", "question": QUESTION, "photo": str(SKIMAGE_DATA / "coffee.png")},  # the same content
        {"id": "camera", "question": QUESTION, "photo": str(SKIMAGE_DATA / "camera.png")},  # 140 kB: inline
        {"id": "rocket", "question": QUESTION, "photo": f"{url}/rocket.jpg"},  # a URL, 113 kB: inline
    ]


@pytest.mark.parametrize(("dag_id", "path"), [("gemini_op_media", "batch"), ("gemini_op_media_online", "online")])
def test_media_rows_are_answered_from_their_media_then_the_uploads_are_removed(airflow_db, emulator, gemini_conn,
                                                                                tmp_path, web_server, dag_id, path):
    records = _photo_records(web_server)
    dag_run, rows = run_dag(tmp_path, dag_id, records)
    assert dag_run.state == "success"
    text = {r["key"]: r["text"] for r in rows}
    assert sorted(text) == sorted(r["id"] for r in records)
    assert all(r["status"] == "succeeded" and r["path"] == path for r in rows)
    # Each answer comes from its own photo, inline or uploaded.
    assert text["astronaut"].startswith("A 512x512 image") and text["camera"].startswith("A 512x512 image, mostly")
    assert text["coffee"] == text["coffee-again"] and text["coffee"].startswith("A 600x400 image")
    assert text["rocket"].startswith("A 640x427 image")
    # Two distinct photos were too big to go inline: two uploads (coffee once), besides a batch's input file.
    assert emulator.state.counters["uploads"] == 2 + (path == "batch")
    # The uploaded photos were deleted once the results had landed (a batch keeps only its output file).
    remaining = [f["mimeType"] for f in emulator.state.store.files.values()]
    assert remaining == (["application/jsonl"] if path == "batch" else [])


def _task(operator, tmp_path, records, **kwargs):
    return operator(task_id="media", records=records, key_field="id", prompt_template="{question}\n{photo}",
                    media_fields=["photo"], output_path=str(tmp_path / "out" / "results.jsonl"),
                    inline_media_max_bytes=200_000, **kwargs)


def _run(tmp_path, operator, records, **kwargs):
    """One task of ``operator`` through ``dag.test()``; returns the DagRun, its rows and its summary."""
    import pendulum
    from airflow.sdk import DAG

    from tests.dagbag import test_dag

    with DAG(dag_id="media", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        _task(operator, tmp_path, records, **kwargs)
    dag_run = test_dag(dag, tmp_path / "no-dags")
    out = tmp_path / "out" / "results.jsonl"
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return dag_run, rows, dag_run.get_task_instance("media").xcom_pull(task_ids="media")


class LoseWorkerAfterSubmit(GeminiBatchOperator):
    """Its first try uploads and creates its job, then its worker is lost before the ledger records
    the job; ``created`` keeps the job's name."""

    created: ClassVar[list[str]] = []

    def execute(self, context):
        if context["ti"].try_number == 1:
            create = self.hook.create_batch_job

            def create_then_lose(*args, **kwargs):
                job = create(*args, **kwargs)
                LoseWorkerAfterSubmit.created.append(job.name)
                raise RuntimeError(f"worker lost right after creating {job.name}")

            self.hook.create_batch_job = create_then_lose
        return super().execute(context)


def test_bytes_several_media_per_row_and_kept_uploads(airflow_db, emulator, gemini_conn, tmp_path):
    logo = (SKIMAGE_DATA / "logo.png").read_bytes()  # bytes given in the record, not a path
    records = [{"id": "pair", "question": "Compare", "photo": [str(SKIMAGE_DATA / "astronaut.png"), logo]}]
    dag_run, [row], _ = _run(tmp_path, GeminiConcurrentGenerateOperator, records, keep_media_files=True)
    assert dag_run.state == "success"
    assert row["status"] == "succeeded" and row["text"].count("image") == 2  # both media, in order
    assert row["text"].startswith("A 512x512 image")
    # keep_media_files: the uploaded photo is still there.
    assert [f["mimeType"] for f in emulator.state.store.files.values()] == ["image/png"]


def test_a_retry_reuses_what_the_first_try_uploaded(airflow_db, emulator, client, gemini_conn, tmp_path, web_server):
    records = _photo_records(web_server)
    # The first try submits and is lost; Airflow's retry finds the same photos and the same job.
    dag_run, rows, summary = _run(tmp_path, LoseWorkerAfterSubmit, records, deferrable=False, poll_interval=0.2,
                                  retries=1, retry_delay=0)
    assert dag_run.state == "success" and dag_run.get_task_instance("media").try_number == 2
    assert summary["counts"]["succeeded"] == len(records) == len(rows)
    # The job the first try created is the one the retry found and landed: nothing created twice.
    assert summary["batch_jobs"] == LoseWorkerAfterSubmit.created[-1:] and len(list(client.batches.list())) == 1
    assert emulator.state.counters["uploads"] == 2 + 1  # the two photos and the input file, once each
    assert sorted(f["mimeType"] for f in emulator.state.store.files.values()) == ["application/jsonl"]


def test_a_failed_job_keeps_the_media_for_the_retry_that_submits_it_anew(airflow_db, tmp_path, web_server,
                                                                          monkeypatch):
    from google import genai

    from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread

    records = _photo_records(web_server)
    # The first job FAILS; Airflow's retry submits the shard anew and reuses the uploaded photos.
    config = EmulatorConfig(batch_pending_s=0.3, batch_running_s=0.5, batch_outcome="fail-once")
    with EmulatorThread(config) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(
            {"conn_type": "gemini", "password": "test-key", "extra": {"base_url": emulator.base_url}}))
        dag_run, rows, summary = _run(tmp_path, GeminiBatchOperator, records, deferrable=False, poll_interval=0.2,
                                      retries=1, retry_delay=0)
        client = genai.Client(api_key="test-key", http_options={"base_url": emulator.base_url})
        jobs = [job.state.value for job in client.batches.list()]
        files = [f.mime_type for f in client.files.list()]
    assert dag_run.state == "success" and dag_run.get_task_instance("media").try_number == 2
    assert summary["counts"]["succeeded"] == len(records) == len(rows)
    assert sorted(jobs) == ["JOB_STATE_FAILED", "JOB_STATE_SUCCEEDED"]
    assert emulator.state.counters["uploads"] == 2 + 2  # the photos once, an input file for each job
    assert "image/png" not in files  # removed once the retry succeeded


@pytest.mark.parametrize("operator", [GeminiBatchOperator, GeminiConcurrentGenerateOperator])
@pytest.mark.parametrize(("photo", "kwargs", "message"), [
    ("/nowhere/photo.png", {}, ["row 1, field 'photo': can't read /nowhere/photo.png", "check the path"]),
    ("{url}/missing.png", {}, ["row 1, field 'photo': {url}/missing.png answered HTTP 404", "fix the URL"]),
    (str(SKIMAGE_DATA / "multipage.tif"), {}, ["multipage.tif is image/tiff, which Gemini does not take",
                                              "convert it to one of PNG, JPEG"]),
    (str(SKIMAGE_DATA / "no_time_for_that_tiny.gif"), {}, ["is image/gif"]),
    (str(SKIMAGE_DATA / "coffee.png"), {"max_media_bytes": 300_000},
     ["row 1, field 'photo'", "has 466706 bytes; media must have 1 to 300000 bytes"]),  # the good row has 140 kB
    ("", {}, ["row 1, field 'photo': no media"]),
    ("photos/cat.png", {}, ["is a relative path; give an absolute one"]),
])
def test_bad_media_refuse_the_run_before_anything_is_uploaded(airflow_db, emulator, gemini_conn, tmp_path, web_server,
                                                              operator, photo, kwargs, message):
    url, _ = web_server
    records = [{"id": "good", "question": QUESTION, "photo": str(SKIMAGE_DATA / "camera.png")},
               {"id": "bad", "question": QUESTION, "photo": photo.format(url=url)}]
    from tests.dagbag import recording_failures

    task = recording_failures(operator)
    dag_run, rows, _ = _run(tmp_path, task, records, retries=1, **kwargs)
    assert dag_run.state == "failed" and dag_run.get_task_instance("media").try_number == 1 and rows == []
    [error] = task.errors
    assert all(part.format(url=url) in error for part in message), error
    assert emulator.state.counters["uploads"] == 0 and emulator.state.store.batches == {}
    assert emulator.state.counters["ok"] == 0


def test_the_mime_type_comes_from_the_content_not_the_name(tmp_path):
    from gemini_batch_provider.core.media import sniff

    png = (SKIMAGE_DATA / "camera.png").read_bytes()[:64]
    assert sniff(png, "photo.jpg") == "image/png"  # a misnamed PNG is a PNG
    assert sniff((SKIMAGE_DATA / "rocket.jpg").read_bytes()[:64], "rocket") == "image/jpeg"
    assert sniff(b"Plain words, nothing more.", "notes.txt") == "text/plain"
    assert sniff(b"\xff\xfe\x00binary\x00", "notes.txt") == "application/octet-stream"
    assert sniff(b"%PDF-1.7\n", "scan") == "application/pdf"


def test_the_emulator_refuses_a_deleted_file_and_bad_base64(client):
    import io

    from google.genai import errors

    uploaded = client.files.upload(file=io.BytesIO((SKIMAGE_DATA / "camera.png").read_bytes()),
                                   config={"mime_type": "image/png"})
    part = {"file_data": {"file_uri": uploaded.uri, "mime_type": "image/png"}}
    answer = client.models.generate_content(model="gemini-2.5-flash", contents=[{"role": "user", "parts": [part]}])
    assert answer.text.startswith("A 512x512 image")
    client.files.delete(name=uploaded.name)
    with pytest.raises(errors.ClientError, match="no such file; it was deleted, or expired 48 h after upload"):
        client.models.generate_content(model="gemini-2.5-flash", contents=[{"role": "user", "parts": [part]}])


def test_on_vertex_gs_media_go_straight_in_and_large_local_ones_are_staged_in_cloud_storage(
        airflow_db, emulator, gcs, monkeypatch, tmp_path):
    vertex_conn(monkeypatch, emulator, conn_id="gemini_default")
    gcs.bucket("bkt").blob("photos/chelsea.png").upload_from_filename(str(SKIMAGE_DATA / "chelsea.png"))
    records = [{"id": "cat", "question": QUESTION, "photo": "gs://bkt/photos/chelsea.png"},  # read by Vertex AI
               {"id": "astronaut", "question": QUESTION, "photo": str(SKIMAGE_DATA / "astronaut.png")},  # staged
               {"id": "camera", "question": QUESTION, "photo": str(SKIMAGE_DATA / "camera.png")}]  # inline
    dag_run, landed, _ = _run(tmp_path, GeminiBatchOperator, records, deferrable=False, poll_interval=0.2,
                              gcs_staging_uri="gs://bkt/staging")
    assert dag_run.state == "success"
    rows = {r["key"]: r for r in landed}
    assert rows["cat"]["text"].startswith("A 451x300 image") and rows["astronaut"]["text"].startswith("A 512x512")
    assert all(r["status"] == "succeeded" for r in rows.values())
    # The staged photo was removed after landing; the user's own object stays.
    names = sorted(b.name for b in gcs.list_blobs("bkt"))
    assert "photos/chelsea.png" in names and not [n for n in names if n.startswith("staging/media/")]
    assert emulator.state.counters["uploads"] == 0  # no Files API on Vertex AI


@pytest.mark.parametrize(("operator", "path", "options"), [
    (GeminiBatchOperator, "batch", {"poll_interval": 0.2}), (GeminiConcurrentGenerateOperator, "online", {})])
def test_an_image_model_lands_its_pictures_beside_the_results_and_media_resolution_goes_through(
        airflow_db, emulator, gemini_conn, tmp_path, operator, path, options):
    records = [{"id": "camera/1", "question": "Draw this in red.", "photo": str(SKIMAGE_DATA / "camera.png")},
               {"id": "logo", "question": "Draw this in blue.", "photo": str(SKIMAGE_DATA / "logo.png")}]
    config = {"response_modalities": ["TEXT", "IMAGE"], "media_resolution": "MEDIA_RESOLUTION_HIGH"}
    dag_run, rows, summary = _run(tmp_path, operator, records, model="gemini-3.1-flash-image-preview",
                                  generation_config=config, **options)
    assert dag_run.state == "success" and [r["path"] for r in rows] == [path, path]
    folder = tmp_path / "out" / "results_images"
    for row in rows:
        [image] = row["images"]
        assert image["mime_type"] == "image/png" and Path(image["file"]).parent == folder
        assert Path(image["file"]).read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and row["text"]
        # An image at high resolution on Gemini 3 is 1120 prompt tokens (258 when not set), plus the question's.
        assert 1120 < row["usage"]["prompt_token_count"] < 1120 + 10
    assert sorted(p.name for p in folder.iterdir()) == ["camera%2F1-0.png", "logo-0.png"]  # one name per key
    # The pictures' 1290 tokens each at the image output price ($60 per million, halved in batch).
    usage, half = summary["usage"], 0.5 if path == "batch" else 1.0
    text_out = usage["candidates_token_count"] - 2 * 1290
    expected = (usage["prompt_token_count"] * 0.50 + text_out * 3.00 + 2 * 1290 * 60.00) / 1e6 * half
    assert summary["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert summary["cost_usd"] / 2 < summary["estimated_cost_usd"] < 2 * summary["cost_usd"]
