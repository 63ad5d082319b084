"""The emulator's resources: files kept on disk, their metadata and batch jobs in memory, each saved
on its own under ``state/files/<id>.json`` or ``state/batches/<id>.json`` in the data folder when it
changes (a change writes one resource, not all of them), so that an emulator started again on the
same folder carries on (uploads in progress are lost, as a dropped connection loses them).

Resources are stored in the wire shape the Gemini API returns (camelCase, int64 as strings), so the
handlers answer with them as they are.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import InvalidRequest

FILE_RETENTION = timedelta(hours=48)  # Files API retention, per the Gemini Files API docs


def now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    """Lowercase alphanumeric, as the API's file and batch ids are."""
    return secrets.token_hex(8)


@dataclass
class Upload:
    """A resumable upload in progress."""

    id: str
    path: Path
    meta: dict[str, Any]
    received: int = 0
    sha256: Any = field(default_factory=hashlib.sha256)


@dataclass
class Batch:
    """A batch job; ``resource`` is the GenerateContentBatch as the API shows it."""

    id: str
    resource: dict[str, Any]
    input_requests: list[dict[str, Any]] | None = None  # inline batches only
    outcome: str = "succeed"  # how it ends: succeed, fail, expire or stall (see BatchRunner)
    created: float = field(default_factory=time.time)  # Unix time; its timeline runs from here
    tokens: int = 0  # estimated, for the enqueued-token limit
    kind: str = "generate"  # "generate" (batchGenerateContent) or "embed" (asyncBatchEmbedContent)


class Store:
    """Files under ``root`` (content) with their metadata, uploads in progress and batches."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "files").mkdir(parents=True, exist_ok=True)
        (root / "uploads").mkdir(parents=True, exist_ok=True)
        self.files: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, Upload] = {}
        self.batches: dict[str, Batch] = {}
        self._saving = threading.Lock()
        for kind in ("files", "batches"):
            (root / "state" / kind).mkdir(parents=True, exist_ok=True)
        for saved in (root / "state" / "files").glob("*.json"):
            self.files[saved.stem] = json.loads(saved.read_text())
        for saved in (root / "state" / "batches").glob("*.json"):
            self.batches[saved.stem] = Batch(**json.loads(saved.read_text()))

    def _save(self, kind: str, resource_id: str, data: dict[str, Any] | None) -> None:
        """Write one resource's record atomically (None: remove it), one writer at a time (the
        emulator's loop, and EmulatorThread's caller in tests)."""
        path = self.root / "state" / kind / f"{resource_id}.json"
        with self._saving:
            if data is None:
                path.unlink(missing_ok=True)
                return
            part = path.with_suffix(".part")
            part.write_text(json.dumps(data))
            os.replace(part, path)

    def save_batch(self, batch: Batch) -> None:
        self._save("batches", batch.id, asdict(batch))

    def forget_batch(self, batch_id: str) -> None:
        del self.batches[batch_id]
        self._save("batches", batch_id, None)

    def file_path(self, file_id: str) -> Path:
        return self.root / "files" / file_id

    def start_upload(self, meta: dict[str, Any]) -> Upload:
        upload = Upload(id=new_id(), path=self.root / "uploads" / new_id(), meta=meta)
        upload.path.touch()
        self.uploads[upload.id] = upload
        return upload

    def add_file(self, file_id: str, content_path: Path, *, display_name: str | None, mime_type: str,
                 sha256: bytes, source: str, base_url: str) -> dict[str, Any]:
        """Move finished content into place and register its File resource."""
        content_path.replace(self.file_path(file_id))
        created = now()
        resource = {
            "name": f"files/{file_id}",
            "mimeType": mime_type,
            "sizeBytes": str(self.file_path(file_id).stat().st_size),
            "createTime": timestamp(created),
            "updateTime": timestamp(created),
            "expirationTime": timestamp(created + FILE_RETENTION),
            "sha256Hash": base64.b64encode(sha256).decode(),
            "uri": f"{base_url}/v1beta/files/{file_id}",
            "downloadUri": f"{base_url}/download/v1beta/files/{file_id}:download?alt=media",
            "state": "ACTIVE",
            "source": source,
        }
        if display_name:
            resource["displayName"] = display_name
        self.files[file_id] = resource
        self._save("files", file_id, resource)
        return resource

    def read_file(self, uri: str) -> bytes:
        """The content of the file a request's ``fileData.fileUri`` names; InvalidRequest when it
        does not exist: never uploaded, deleted, or past its 48 h (``expirationTime``)."""
        file_id = uri.rsplit("/files/", 1)[-1] if "/files/" in uri else uri.removeprefix("files/")
        resource = self.files.get(file_id)
        if resource is None or resource["expirationTime"] <= timestamp(now()):
            raise InvalidRequest(f"fileData.fileUri {uri}: no such file; it was deleted, or expired 48 h after "
                                 "upload")
        return self.file_path(file_id).read_bytes()

    def delete_file(self, file_id: str) -> None:
        del self.files[file_id]
        self.file_path(file_id).unlink(missing_ok=True)
        self._save("files", file_id, None)
