"""Where a run's large media are uploaded, and how they are removed: the Files API for the Gemini
API, Cloud Storage (under the batch operators' ``gcs_staging_uri``) for Vertex AI.

Uploads are named after the task instance and the content's hash, so that a retry of the same task
instance finds what an earlier try uploaded instead of uploading it again (and its requests, hence
the ledger's fingerprint, stay the same).
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from google.genai import types

from gemini_batch_provider.core.errors import MediaRejected
from gemini_batch_provider.core.media import Uploader
from gemini_batch_provider.hooks.gemini import GeminiHook

ACTIVE_WAIT_S = 300.0  # how long an upload may stay PROCESSING (video) before the run gives up


def files_api_uploader(hook: GeminiHook, identity: str) -> Uploader:
    """Upload through ``client.aio.files.upload``, reusing what this task instance uploaded before."""
    tag = hashlib.sha256(identity.encode()).hexdigest()[:16]
    existing: dict[str, str] | None = None
    listing = asyncio.Lock()

    async def upload(path: Path, mime: str, sha256: str) -> str:
        nonlocal existing
        name = f"gemini-batch-media {tag} {sha256[:40]}"
        async with listing:  # one listing of the project's files, by the first upload
            if existing is None:
                files = await asyncio.to_thread(lambda: list(hook.client.files.list(config={"page_size": 100})))
                existing = {f.display_name: f.uri for f in files
                            if f.display_name and f.uri and f.state == types.FileState.ACTIVE}
        if name in existing:
            return existing[name]
        uploaded = await hook.client.aio.files.upload(file=str(path), config={"mime_type": mime,
                                                                             "display_name": name})
        for _ in range(int(ACTIVE_WAIT_S)):
            if uploaded.state != types.FileState.PROCESSING:
                break
            await asyncio.sleep(1)
            uploaded = await hook.client.aio.files.get(name=uploaded.name)
        if uploaded.state != types.FileState.ACTIVE:
            raise MediaRejected(f"the Files API did not take {path.name} ({mime}): its state is {uploaded.state}")
        return str(uploaded.uri)

    return upload


def gcs_uploader(hook: GeminiHook, staging_uri: str) -> Uploader:
    """Upload to ``<staging_uri>/media/<sha256>``: the same content lands on the same object."""

    async def upload(path: Path, mime: str, sha256: str) -> str:
        uri = f"{staging_uri.rstrip('/')}/media/{sha256}"
        await asyncio.to_thread(hook.gcs.upload, path, uri)
        return uri

    return upload


def delete_media(hook: GeminiHook, uris: list[str]) -> None:
    """Delete uploaded media: ``gs://`` objects, or Files API files (``.../files/<id>``)."""
    for uri in uris:
        hook.delete_api_file(uri)
