"""Vertex AI batch prediction in the emulator: ``batchPredictionJobs`` reading and writing Cloud Storage.

A job reads its ``gs://`` JSONL input (``{"request": GenerateContentRequest, ...}`` per line),
answers every line with the synthetic model and writes
``<outputUriPrefix>/prediction-model-<timestamp>Z/predictions.jsonl``: one line per input line,
``{"status": "", "processed_time", "request", "response"}`` plus the line's other fields (a key),
or ``status`` holding the error text and no ``response``, as Vertex AI documents
(https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-from-cloud-storage).
Cloud Storage is reached with google-cloud-storage at ``gcs_endpoint`` (a Cloud Storage
emulator). States are Vertex's ``JOB_STATE_*``: PENDING -> RUNNING -> SUCCEEDED, or
PARTIALLY_SUCCEEDED when some rows failed; the same ``outcome`` and ``RowErrors`` as the
Developer API's batches apply. BigQuery jobs (``bq://`` source and destination) are accepted and
end SUCCEEDED without reading or writing anything: there is no BigQuery here.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import model as synthetic
from .batches import JobTasks, RowErrors
from .store import now, timestamp

if TYPE_CHECKING:
    from google.cloud import storage

TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
            "JOB_STATE_EXPIRED"}


def split_gs(uri: str) -> tuple[str, str]:
    """``gs://bucket/path`` as ``(bucket, path)``; raises InvalidRequest for anything else."""
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise synthetic.InvalidRequest(f"{uri!r} is not a gs://bucket/object URI")
    bucket, _, path = uri[5:].partition("/")
    return bucket, path


@dataclass
class VertexJob:
    id: str
    resource: dict[str, Any]
    outcome: str
    created: float = field(default_factory=time.time)


class VertexRunner:
    """Creates Vertex batch prediction jobs and moves them through their states."""

    def __init__(self, *, gcs_endpoint: str | None, pending_s: float, running_s: float, row_errors: RowErrors,
                 outcome: str = "succeed") -> None:
        self.gcs_endpoint = gcs_endpoint
        self.pending_s = pending_s
        self.running_s = running_s
        self.row_errors = row_errors
        self.outcome = outcome
        self.jobs: dict[str, VertexJob] = {}
        self.tasks = JobTasks()

    def _storage(self) -> storage.Client:
        # Imported here: ~0.3 s and ~27 MB that an emulator serving only the Gemini API never needs.
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        if not self.gcs_endpoint:
            raise synthetic.InvalidRequest("this emulator has no Cloud Storage endpoint (--gcs-endpoint)")
        return storage.Client(project="emulator", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.gcs_endpoint})

    def read_gcs(self, uri: str) -> bytes:
        """A ``gs://`` object a request's ``fileData`` names; InvalidRequest when it is not there."""
        from google.api_core import exceptions

        bucket, path = split_gs(uri)
        try:
            return self._storage().bucket(bucket).blob(path).download_as_bytes()
        except exceptions.NotFound:
            raise synthetic.InvalidRequest(f"fileData.fileUri {uri}: no such object") from None

    def create(self, project: str, location: str, spec: dict[str, Any]) -> VertexJob:
        source = spec.get("inputConfig") or {}
        output = spec.get("outputConfig") or {}
        if source.get("instancesFormat") == "bigquery":
            # Passed through as given: no BigQuery here, so the job ends with no rows read or written.
            if not str((source.get("bigquerySource") or {}).get("inputUri", "")).startswith("bq://") or not str(
                    (output.get("bigqueryDestination") or {}).get("outputUri", "")).startswith("bq://"):
                raise synthetic.InvalidRequest("a bigquery job needs bq:// bigquerySource.inputUri and "
                                               "bigqueryDestination.outputUri")
        else:
            uris = (source.get("gcsSource") or {}).get("uris") or []
            prefix = (output.get("gcsDestination") or {}).get("outputUriPrefix")
            if source.get("instancesFormat") != "jsonl" or len(uris) != 1 or not prefix:
                raise synthetic.InvalidRequest("the emulator runs jsonl jobs from one gs:// file to a gs:// prefix")
            split_gs(uris[0])
            split_gs(prefix.rstrip("/") + "/x")
        job_id = str(int(time.time() * 1000))[-10:] + f"{secrets.randbelow(10**6):06d}"  # numeric, as Vertex AI's
        created = timestamp(now())
        resource = {
            "name": f"projects/{project}/locations/{location}/batchPredictionJobs/{job_id}",
            "displayName": spec.get("displayName") or f"job-{job_id}",
            "model": spec.get("model"),
            "inputConfig": source,
            "outputConfig": spec.get("outputConfig"),
            "state": "JOB_STATE_PENDING",
            "createTime": created,
            "updateTime": created,
        }
        job = VertexJob(id=job_id, resource=resource, outcome=self.outcome)
        self.jobs[job_id] = job
        self.tasks.start(job_id, self._run(job))
        return job

    def cancel(self, job: VertexJob) -> None:
        if job.resource["state"] in TERMINAL:
            return
        self.tasks.stop(job.id)
        self._set(job, "JOB_STATE_CANCELLED", ended=True)

    def _set(self, job: VertexJob, state: str, ended: bool = False) -> None:
        moment = timestamp(now())
        job.resource.update(state=state, updateTime=moment)
        if state == "JOB_STATE_RUNNING":
            job.resource["startTime"] = moment
        if ended:
            job.resource["endTime"] = moment

    async def _run(self, job: VertexJob) -> None:
        await asyncio.sleep(max(0.0, job.created + self.pending_s - time.time()))
        if job.outcome == "expire":
            await asyncio.sleep(self.running_s)
            self._set(job, "JOB_STATE_EXPIRED", ended=True)
            return
        self._set(job, "JOB_STATE_RUNNING")
        if job.outcome == "stall":
            return
        state = "JOB_STATE_FAILED"
        if job.outcome != "fail" and job.resource["inputConfig"].get("instancesFormat") == "bigquery":
            state = "JOB_STATE_SUCCEEDED"
            job.resource["outputInfo"] = {"bigqueryOutputTable": job.resource["outputConfig"]["bigqueryDestination"][
                "outputUri"]}
        elif job.outcome != "fail":
            try:
                counts = await asyncio.to_thread(self._predict, job)
                state = "JOB_STATE_PARTIALLY_SUCCEEDED" if counts["failedCount"] else "JOB_STATE_SUCCEEDED"
                job.resource["completionStats"] = {name: str(value) for name, value in counts.items()}
            except Exception as exc:  # a job must end, never hang RUNNING
                job.resource["error"] = {"code": 13, "message": f"{type(exc).__name__}: {exc}"}
        await asyncio.sleep(max(0.0, job.created + self.pending_s + self.running_s - time.time()))
        self._set(job, state, ended=True)
        self.tasks.forget(job.id)

    def _predict(self, job: VertexJob) -> dict[str, int]:
        """Answer the input file into predictions.jsonl (streamed both ways); the completion counts."""
        client = self._storage()
        in_bucket, in_path = split_gs(job.resource["inputConfig"]["gcsSource"]["uris"][0])
        prefix = job.resource["outputConfig"]["gcsDestination"]["outputUriPrefix"].rstrip("/")
        folder = f"{prefix}/prediction-model-{timestamp(now())[:-4]}Z"
        out_bucket, out_path = split_gs(f"{folder}/predictions.jsonl")
        model = str(job.resource["model"]).rsplit("/", 1)[-1]
        counts = {"successfulCount": 0, "failedCount": 0, "incompleteCount": 0}
        source = client.bucket(in_bucket).blob(in_path)
        with source.open("rb") as lines, client.bucket(out_bucket).blob(out_path).open("wb") as out:
            for position, raw in enumerate(line for line in lines if line.strip()):
                line = self._prediction(raw, model, position)
                counts["failedCount" if line["status"] else "successfulCount"] += 1
                out.write((json.dumps(line) + "\n").encode())
        job.resource["outputInfo"] = {"gcsOutputDirectory": folder}
        return counts

    def _prediction(self, raw: bytes, model: str, position: int) -> dict[str, Any]:
        processed = now().isoformat(timespec="milliseconds")
        try:
            item = json.loads(raw)
            if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
                raise synthetic.InvalidRequest("each line must be an object with a 'request' object")
        except (ValueError, synthetic.InvalidRequest) as exc:
            return {"status": f"invalid line: {exc}", "processed_time": processed}
        line = {**item, "status": "", "processed_time": processed}
        if self.row_errors.hits(str(item.get("key", position))):
            line["status"] = self.row_errors.error()["message"]
            return line
        try:
            line["response"] = synthetic.generate(item["request"], f"models/{model}", self.read_gcs)
        except synthetic.InvalidRequest as exc:
            line["status"] = str(exc)
        return line
