"""Vertex AI as a batch backend: input, output and media in Cloud Storage under the batch
operators' ``gcs_staging_uri``, jobs as ``projects/<p>/locations/<l>/batchPredictionJobs/<id>``
(https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-gemini).

Polls keep the SDK's request path, which refreshes the credentials (IAM, not an API key).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google import genai

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.jobs import JobStatus
from gemini_batch_provider.core.vocabulary import job_name, state_name
from gemini_batch_provider.hooks.connection import POLL_OPTIONS, vertex_project_location
from gemini_batch_provider.links import vertex_jobs_url

if TYPE_CHECKING:
    from gemini_batch_provider.hooks.gemini import GeminiHook

NO_STAGING = ("a Vertex AI connection stages batch files in Cloud Storage: set "
              "gcs_staging_uri='gs://<bucket>/<prefix>' on a batch operator")


def _count(fields: dict[str, Any], name: str) -> int:
    return int(fields.get(name) or 0)  # int64 fields come as strings


def job_status(name: str, job: dict[str, Any]) -> JobStatus:
    """Job ``name`` (as polled; the service may answer with the project number instead of its id)
    from a ``BatchPredictionJob``: ``state``, ``completionStats`` and ``outputInfo``, whose
    ``gcsOutputDirectory`` holds ``predictions.jsonl``
    (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs)."""
    stats = job.get("completionStats") or {}
    directory = (job.get("outputInfo") or {}).get("gcsOutputDirectory")
    succeeded, failed = _count(stats, "successfulCount"), _count(stats, "failedCount")
    pending = _count(stats, "incompleteCount")
    return JobStatus(
        name=name,
        state=state_name(job.get("state")),
        output_file=f"{directory.rstrip('/')}/predictions.jsonl" if directory else None,
        display_name=job.get("displayName"),
        requests=succeeded + failed + pending,
        succeeded=succeeded,
        failed=failed,
        pending=pending,
    )


def job_path(client: genai.Client, name: str) -> str:
    """The resource path to GET, rebuilt from the client's project and location and the job id,
    as the SDK does (the service names jobs by project number)."""
    api = client._api_client
    return f"projects/{api.project}/locations/{api.location}/batchPredictionJobs/{name.rsplit('/', 1)[-1]}"


class VertexAiBackend:
    """Vertex AI through ``hook`` (a project, and IAM credentials); see ``core.backend.BatchBackend``.

    :param hook: the task's or trigger's hook, for its clients and Cloud Storage.
    :param staging_uri: ``gs://bucket/prefix`` where shards' input, their predictions and large
        media go (the batch operators' ``gcs_staging_uri``); None for a run that stages nothing.
    """

    source = "vertexai"
    takes_gcs_media = True
    media_expire = False
    takes_priority = False

    def __init__(self, hook: GeminiHook, staging_uri: str | None = None) -> None:
        self.hook = hook
        self.staging_uri = staging_uri

    def check_plan(self, model: str, method: str, embeddings: bool) -> None:
        if embeddings:
            raise InputError("embeddings run on a Gemini API connection (an API key), and this one is Vertex AI: "
                             "the SDK creates no embeddings batch job there")
        self.hook.check_model(model, method)

    def check_staging(self) -> str:
        """``staging_uri``, once it is a ``gs://`` one. :raises InputError: it is not."""
        if not str(self.staging_uri or "").startswith("gs://"):
            raise InputError(NO_STAGING)
        return str(self.staging_uri).rstrip("/")

    def count_tokens(self, model: str, contents: list[dict[str, Any]]) -> int:
        return self.hook.count_tokens(model, contents)

    def _stem(self, display_name: str, index: int) -> str:
        """Shard ``index``'s Cloud Storage stem: input ``<stem>.jsonl``, predictions under ``<stem>-out``."""
        tag = hashlib.sha256(display_name.encode()).hexdigest()[:16]
        return f"{self.check_staging()}/{tag}/shard-{index:05d}"

    def upload_input(self, path: Path, display_name: str, index: int) -> str:
        uri = f"{self._stem(display_name, index)}.jsonl"
        self.hook.gcs.upload(path, uri)
        return uri

    def create_job(self, model: str, src: str, display_name: str, index: int, embeddings: bool,
                   priority: int | None = None) -> str:
        job = self.hook.create_batch_job(model, src=src, display_name=display_name,
                                         dest=f"{self._stem(display_name, index)}-out", embeddings=embeddings)
        return str(job.name)

    def find_jobs(self, display_names: Iterable[str]) -> dict[str, str]:
        return {shown: str(job.name) for shown, job in self.hook.find_batch_jobs(display_names).items()}

    def job_status(self, name: str) -> JobStatus:
        name, client = job_name(name), self.hook.client
        response = client._api_client.request("get", job_path(client, name), {}, POLL_OPTIONS)
        return job_status(name, json.loads(response.body or "{}"))

    async def ajob_status(self, name: str) -> JobStatus:
        name = job_name(name)  # a name read back from kwargs or a ledger is never sent as another resource's path
        client = await self.hook.aget_client()
        response = await client.aio._api_client.async_request("get", job_path(client, name), {})
        return job_status(name, json.loads(response.body or "{}"))

    def cancel(self, name: str) -> None:
        self.hook.client.batches.cancel(name=job_name(name))

    async def acancel(self, name: str) -> None:
        await (await self.hook.aget_client()).aio.batches.cancel(name=job_name(name))

    def download(self, name: str, destination: Path) -> None:
        self.hook.gcs.download(name, destination)

    def delete(self, name: str) -> None:
        self.hook.gcs.delete(name)

    async def upload_media(self, path: Path, mime: str, sha256: str) -> str:
        """Upload to ``<staging_uri>/media/<sha256>``: the same content lands on the same object."""
        if not str(self.staging_uri or "").startswith("gs://"):
            raise InputError("media over the inline limit on Vertex AI are staged in Cloud Storage: give gs:// URIs, "
                             "or set gcs_staging_uri on a batch operator")
        uri = f"{str(self.staging_uri).rstrip('/')}/media/{sha256}"
        await asyncio.to_thread(self.hook.gcs.upload, path, uri)
        return uri

    def read_media(self, uri: str, destination: Path) -> None:
        """Vertex AI reads ``gs://`` media itself (``takes_gcs_media``): nothing to download."""
        raise InputError(f"{uri} goes into the request as it is; nothing reads it here")

    def jobs_url(self, names: Sequence[str]) -> str:
        where = vertex_project_location(self.hook.connection)
        return vertex_jobs_url(names, where["project"], where["location"])
