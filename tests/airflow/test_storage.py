"""The same DAG, the same rows, from and to local files, Cloud Storage (its emulator) and S3 (moto's
server, through an Airflow AWS connection); ``storage`` decides which is which."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.dagbag import DagBag

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def moto_url():
    """moto's S3 server on a free port, for the session (each test uses a bucket of its own)."""
    from moto.server import ThreadedMotoServer

    from gemini_batch_provider.emulator import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(moto_url, monkeypatch):
    """A fresh bucket and the ``aws_moto`` connection that reaches it; yields (boto3 client, bucket)."""
    import boto3

    keys = {"aws_access_key_id": "moto", "aws_secret_access_key": "moto", "region_name": "us-east-1"}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", json.dumps({
        "conn_type": "aws", "login": keys["aws_access_key_id"], "password": keys["aws_secret_access_key"],
        "extra": {"endpoint_url": moto_url, "region_name": keys["region_name"]}}))
    client = boto3.client("s3", endpoint_url=moto_url, **keys)
    bucket = f"bkt-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def _lines(records):
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.mark.parametrize("store", ["local", "gs", "s3"])
def test_the_same_dag_lands_the_same_rows_wherever_input_and_results_live(airflow_db, emulator, gemini_conn, tmp_path,
                                                                         request, store):
    from tests.conftest import DAGS_FOLDER, RECORDS

    if store == "local":
        (tmp_path / "in.jsonl").write_text(_lines(RECORDS))
        source, out = str(tmp_path / "in.jsonl"), str(tmp_path / "out" / "results.jsonl")

        def read(suffix=""):
            return (tmp_path / "out" / f"results.jsonl{suffix}").read_text()
    elif store == "gs":
        bucket = request.getfixturevalue("gcs").bucket("bkt")
        bucket.blob("in/records.jsonl").upload_from_string(_lines(RECORDS))
        source, out = "gs://bkt/in/records.jsonl", "gs://bkt/out/results.jsonl"

        def read(suffix=""):
            return bucket.blob(f"out/results.jsonl{suffix}").download_as_text()
    else:
        client, name = request.getfixturevalue("s3")
        client.put_object(Bucket=name, Key="in/records.jsonl", Body=_lines(RECORDS).encode())
        source, out = f"s3://{name}/in/records.jsonl", f"s3://{name}/out/results.jsonl"

        def read(suffix=""):
            return client.get_object(Bucket=name, Key=f"out/results.jsonl{suffix}")["Body"].read().decode()

    dag_run = DagBag(dag_folder=DAGS_FOLDER).get_dag("gemini_op_storage").test(run_conf={"in": source, "out": out})
    assert dag_run.state == "success"
    rows = [json.loads(line) for line in read().splitlines()]
    assert [r["key"] for r in rows] == [r["id"] for r in RECORDS] and all(r["status"] == "succeeded" for r in rows)
    summary = dag_run.get_task_instance("batch").xcom_pull(task_ids="batch")
    assert summary["output_path"] == out and summary["rows"] == len(RECORDS)
    ledger = json.loads(read(".gemini-batch.json"))  # beside the results, wherever they are
    assert [s["job"] for s in ledger["shards"]] == summary["batch_jobs"]
    # Read back by the summary alone, from wherever the results are.
    from gemini_batch_provider.results import read_results

    assert list(read_results(summary, storage_conn_id="aws_moto")) == rows
    assert list(read_results(summary, status="failed", storage_conn_id="aws_moto")) == []


def test_a_scheme_airflow_has_no_filesystem_for_fails_before_anything_is_sent(airflow_db, emulator, client,
                                                                              gemini_conn, tmp_path):
    from tests.conftest import DAGS_FOLDER, RECORDS

    (tmp_path / "in.jsonl").write_text(_lines(RECORDS))
    run_conf = {"in": str(tmp_path / "in.jsonl"), "out": "nosuchfs://bucket/results.jsonl"}
    dag_run = DagBag(dag_folder=DAGS_FOLDER).get_dag("gemini_op_storage").test(run_conf=run_conf)
    assert dag_run.state == "failed"
    assert list(client.files.list()) == [] and list(client.batches.list()) == []


def test_pictures_of_remote_results_are_uploaded_beside_them_and_named_by_their_url(airflow_db, s3):
    from gemini_batch_provider.storage import Location, results_writer

    client, bucket = s3
    target = Location(f"s3://{bucket}/out/night.jsonl", hook=lambda: None, conn_id="aws_moto")
    writer = results_writer(target, check=None)
    row = {"key": "k", "status": "succeeded", "path": "batch", "text": None, "usage": None,
           "images": [{"mime_type": "image/png", "data": b"\x89PNG picture"}]}
    writer.write(row)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # nothing shows before the results are whole
    writer.close()
    [landed] = [json.loads(line) for line in client.get_object(Bucket=bucket, Key="out/night.jsonl")["Body"].read()
                .decode().splitlines()]
    assert landed["images"] == [{"file": f"s3://{bucket}/out/night_images/k-0.png", "mime_type": "image/png"}]
    picture = client.get_object(Bucket=bucket, Key="out/night_images/k-0.png")["Body"].read()
    assert picture == b"\x89PNG picture"
