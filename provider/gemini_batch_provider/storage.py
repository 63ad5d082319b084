"""Where a task's input, results and ledger live: the one place that tells the kinds of location apart.

- **A local path** (absolute, ``~`` expanded) is the worker's disk.
- **``gs://``** is Cloud Storage through the Gemini hook's google-cloud-storage client (the
  connection's Vertex AI credentials, else the machine's default ones), so it needs no other
  provider.
- **Any other URL** (``s3://``, ``abfs://``, ``file://``, ...) goes through Airflow's
  ``ObjectStoragePath`` with ``storage_conn_id``, through the provider that registers its scheme:
  ``apache-airflow-providers-amazon[s3fs]`` for ``s3://``, for one
  (https://airflow.apache.org/docs/apache-airflow/stable/core-concepts/objectstorage.html).

Whatever the kind, readers never see half a file. A file written locally is renamed into place; a
remote one is uploaded whole once it is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import ObjectStoragePath

from gemini_batch_provider.core.errors import InputError

if TYPE_CHECKING:
    from gemini_batch_provider.hooks.gemini import GeminiHook


class Location:
    """One file at ``url``: read it, download it, write it whole.

    :param url: a local absolute path or a URL (see the module docstring).
    :param hook: makes the Gemini hook, for ``gs://`` (called only then).
    :param conn_id: the connection for ``ObjectStoragePath`` URLs (None: the scheme's default).
    """

    def __init__(self, url: str, hook: Callable[[], GeminiHook], conn_id: str | None = None) -> None:
        self.url = url
        self._hook = hook
        self._conn_id = conn_id

    @property
    def local(self) -> Path | None:
        """The path when the location is on the worker's disk, else None."""
        return None if "://" in self.url else Path(self.url).expanduser()

    def check(self) -> None:
        """Raise InputError, before anything is sent, when Airflow has no filesystem for the URL."""
        if self.local is None and not self.url.startswith("gs://"):
            self._object()

    def _object(self) -> ObjectStoragePath:
        try:
            target = ObjectStoragePath(self.url, conn_id=self._conn_id)
            target.fs  # noqa: B018 (resolves the scheme's filesystem, which raises when there is none)
            return target
        except (ValueError, ImportError) as exc:
            scheme = self.url.split("://", 1)[0]
            raise InputError(f"{self.url}: Airflow has no filesystem for {scheme}:// ({exc}); install the provider "
                             "that brings it, e.g. apache-airflow-providers-amazon[s3fs] for s3://") from None

    def read_text(self) -> str | None:
        """The file's text (UTF-8); None when there is no such file."""
        if (path := self.local) is not None:
            try:
                return path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return None
        if self.url.startswith("gs://"):
            return self._hook().read_gcs_text(self.url)
        target = self._object()
        return target.read_text(encoding="utf-8") if target.exists() else None

    def write_text(self, text: str) -> None:
        """Replace the file with ``text`` (UTF-8), whole."""
        with tempfile.TemporaryDirectory(prefix="gemini-write-") as folder:
            staged = Path(folder) / "file"
            staged.write_text(text, encoding="utf-8")
            self.put(staged)

    def put(self, staged: Path) -> None:
        """Make the local file ``staged`` this location's content, whole. A local target is
        replaced by a rename in its own folder, so ``staged`` is copied there first."""
        if (path := self.local) is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_name(path.name + ".part")
            shutil.copyfile(staged, part)
            os.replace(part, path)
        elif self.url.startswith("gs://"):
            self._hook().upload_gcs(staged, self.url)
        else:
            ObjectStoragePath(f"file://{staged}").copy(self._object())

    def download(self, destination: Path) -> None:
        """Copy the remote file to the local ``destination``, streamed.

        :raises InputError: there is no file at this location.
        """
        if self.url.startswith("gs://"):
            self._hook().download_gcs(self.url, destination)
        else:
            source = self._object()
            if not source.is_file():
                raise InputError(f"{self.url}: no such file; check input_path and storage_conn_id")
            source.copy(ObjectStoragePath(f"file://{destination}"))
