"""The Gemini Developer API as a batch backend: input and media through the Files API, jobs as
``batches/<id>`` (https://ai.google.dev/api/batch-mode).

A poll goes straight through the loop's shared aiohttp session (``hooks.connection.loop_session``):
the same request the SDK sends (the client's own base URL, API version and headers, the key among
them), its errors the SDK's own (``errors.APIError.raise_for_async_response``). The SDK's request
path around it (retry wrapper, options merge, request and response objects) doubles a poll's CPU,
~0.2 ms more, which a triggerer polling ten thousand jobs can't spare.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from google.genai import errors, types

from gemini_batch_provider.core.errors import MediaRejected
from gemini_batch_provider.core.jobs import JobStatus
from gemini_batch_provider.core.vocabulary import job_name, state_name
from gemini_batch_provider.hooks.connection import POLL_OPTIONS, POLL_TIMEOUT_MS, loop_session
from gemini_batch_provider.links import AI_STUDIO_BATCHES

if TYPE_CHECKING:
    from gemini_batch_provider.hooks.gemini import GeminiHook

ACTIVE_WAIT_S = 300.0  # how long an upload may stay PROCESSING (video) before the run gives up
_POLL_TIMEOUT = aiohttp.ClientTimeout(total=POLL_TIMEOUT_MS / 1000)


def _count(fields: dict[str, Any], name: str) -> int:
    return int(fields.get(name) or 0)  # int64 fields come as strings


def job_status(name: str, operation: dict[str, Any]) -> JobStatus:
    """Job ``name`` (as polled) from its long-running Operation (``batches.get``): ``metadata`` holds the
    ``GenerateContentBatch`` or ``EmbedContentBatch``, with ``state``, ``batchStats`` and
    ``output.responsesFile`` (https://ai.google.dev/api/batch-mode#GenerateContentBatch). Read as
    plain JSON: the SDK's ``batches.get`` drops ``batchStats``."""
    batch = operation.get("metadata") or {}
    stats = batch.get("batchStats") or {}
    return JobStatus(
        name=name,
        state=state_name(batch.get("state")),
        output_file=(batch.get("output") or {}).get("responsesFile"),
        display_name=batch.get("displayName"),
        requests=_count(stats, "requestCount"),
        succeeded=_count(stats, "successfulRequestCount"),
        failed=_count(stats, "failedRequestCount"),
        pending=_count(stats, "pendingRequestCount"),
    )


class GeminiApiBackend:
    """The Gemini Developer API through ``hook`` (an API key); see ``core.backend.BatchBackend``.

    :param hook: the task's or trigger's hook, for its clients.
    :param identity: the task instance's run-stable identity: media it uploads are named after it,
        so that a retry finds them instead of uploading them again.
    """

    source = "gemini"
    takes_gcs_media = False
    media_expire = True
    takes_priority = True

    def __init__(self, hook: GeminiHook, identity: str = "") -> None:
        self.hook = hook
        self._media_tag = hashlib.sha256(identity.encode()).hexdigest()[:16]
        self._media_listed: dict[str, str] | None = None
        self._listing: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None  # a lock per event loop

    def check_plan(self, model: str, method: str, embeddings: bool) -> None:
        self.hook.check_model(model, method)

    def count_tokens(self, model: str, contents: list[dict[str, Any]]) -> int:
        return self.hook.count_tokens(model, contents)

    def upload_input(self, path: Path, display_name: str, index: int) -> str:
        return str(self.hook.upload_file(path, display_name=display_name).name)

    def create_job(self, model: str, src: str, display_name: str, index: int, embeddings: bool,
                   priority: int | None = None) -> str:
        job = self.hook.create_batch_job(model, src=src, display_name=display_name, embeddings=embeddings,
                                         priority=priority)
        return str(job.name)

    def find_jobs(self, display_names: Iterable[str]) -> dict[str, str]:
        return {shown: str(job.name) for shown, job in self.hook.find_batch_jobs(display_names).items()}

    def job_status(self, name: str) -> JobStatus:
        name, client = job_name(name), self.hook.client
        response = client._api_client.request("get", name, {}, POLL_OPTIONS)
        return job_status(name, json.loads(response.body or "{}"))

    async def ajob_status(self, name: str) -> JobStatus:
        name = job_name(name)  # a name read back from kwargs or a ledger is never sent as another resource's path
        options = (await self.hook.aget_client()).aio._api_client._http_options
        url = f"{str(options.base_url).rstrip('/')}/{options.api_version}/{name}"
        async with loop_session().get(url, headers=options.headers, timeout=_POLL_TIMEOUT) as response:
            await errors.APIError.raise_for_async_response(response)
            return job_status(name, json.loads(await response.read() or b"{}"))

    def cancel(self, name: str) -> None:
        self.hook.client.batches.cancel(name=job_name(name))

    async def acancel(self, name: str) -> None:
        await (await self.hook.aget_client()).aio.batches.cancel(name=job_name(name))

    def download(self, name: str, destination: Path) -> None:
        self.hook.download_file(name, destination)

    def delete(self, name: str) -> None:
        """Delete a Files API file, given as ``files/<id>`` or as its URI (``https://.../files/<id>``)."""
        self.hook.delete_file("files/" + name.rsplit("files/", 1)[-1])

    async def upload_media(self, path: Path, mime: str, sha256: str) -> str:
        """Upload through ``client.aio.files.upload``, reusing what this task instance uploaded before."""
        name = f"gemini-batch-media {self._media_tag} {sha256[:40]}"
        loop = asyncio.get_running_loop()
        if self._listing is None or self._listing[0] is not loop:
            self._listing = (loop, asyncio.Lock())
        async with self._listing[1]:  # one listing of the project's files, by the first upload
            if self._media_listed is None:
                files = await asyncio.to_thread(lambda: list(self.hook.client.files.list(config={"page_size": 100})))
                self._media_listed = {f.display_name: f.uri for f in files
                                      if f.display_name and f.uri and f.state == types.FileState.ACTIVE}
        if name in self._media_listed:
            return self._media_listed[name]
        client = self.hook.client
        uploaded = await client.aio.files.upload(file=str(path), config={"mime_type": mime, "display_name": name})
        for _ in range(int(ACTIVE_WAIT_S)):
            if uploaded.state != types.FileState.PROCESSING:
                break
            await asyncio.sleep(1)
            uploaded = await client.aio.files.get(name=uploaded.name)
        if uploaded.state != types.FileState.ACTIVE:
            raise MediaRejected(f"the Files API did not take {path.name} ({mime}): its state is {uploaded.state}")
        return str(uploaded.uri)

    def read_media(self, uri: str, destination: Path) -> None:
        """A ``gs://`` medium, read with the machine's default credentials (the Gemini API reads no Cloud Storage)."""
        self.hook.gcs.download(uri, destination)

    def jobs_url(self, names: Sequence[str]) -> str:
        """AI Studio's batch list (https://aistudio.google.com/batches), which has no page per job."""
        return AI_STUDIO_BATCHES
