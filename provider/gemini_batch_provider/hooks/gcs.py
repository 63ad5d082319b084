"""Cloud Storage for the Gemini hook: ``gs://`` objects read, written and removed with
google-cloud-storage, as a Vertex AI connection (or the machine's default credentials) allows."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud import storage


class CloudStorage:
    """``gs://bucket/object`` files through the client ``make_client`` builds (on first use)."""

    def __init__(self, make_client: Callable[[], storage.Client]) -> None:
        self._make_client = make_client

    @cached_property
    def client(self) -> storage.Client:
        return self._make_client()

    def _blob(self, uri: str) -> storage.Blob:
        bucket, _, name = uri.removeprefix("gs://").partition("/")
        return self.client.bucket(bucket).blob(name)

    def upload(self, path: Path, uri: str) -> None:
        """Upload a local file to ``uri`` (resumable, streamed from disk)."""
        self._blob(uri).upload_from_filename(str(path), content_type="application/jsonl")

    def download(self, uri: str, destination: Path) -> None:
        """Stream ``uri`` to a local file."""
        self._blob(uri).download_to_filename(str(destination))

    def delete(self, uri: str) -> None:
        self._blob(uri).delete()

    def exists(self, uri: str) -> bool:
        return self._blob(uri).exists()

    def names_in(self, folder_uri: str) -> list[str]:
        """The names of the objects directly in the folder ``folder_uri`` (``gs://bucket/prefix``)."""
        bucket, _, prefix = folder_uri.removeprefix("gs://").partition("/")
        prefix = prefix.rstrip("/") + "/" if prefix.rstrip("/") else ""
        blobs = self.client.list_blobs(bucket, prefix=prefix, delimiter="/")
        return [blob.name[len(prefix):] for blob in blobs]

    def read_text(self, uri: str) -> str | None:
        """A small object's text; None when it does not exist."""
        from google.api_core.exceptions import NotFound  # with google-cloud-storage, not up front

        try:
            return self._blob(uri).download_as_text()
        except NotFound:
            return None
