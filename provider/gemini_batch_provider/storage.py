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
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.results import ResultsWriter

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
    def identity(self) -> str:
        """The file however it is spelled: a local path (or ``file://`` URL) resolved through links,
        ``~`` and ``..``; any other URL with its scheme and bucket in lower case, as they compare."""
        scheme, found, rest = self.url.partition("://")
        if not found or scheme.lower() == "file":
            return "file://" + os.path.realpath(Path(rest if found else self.url).expanduser())
        bucket, _, key = rest.partition("/")
        return f"{scheme.lower()}://{bucket.lower()}/{key}"

    def beside(self, name: str) -> Location:
        """The location ``name`` (a relative path) in this one's folder."""
        return Location(f"{self.url.rsplit('/', 1)[0]}/{name}", self._hook, self._conn_id)

    @property
    def local(self) -> Path | None:
        """The path when the location is on the worker's disk, else None."""
        return None if "://" in self.url else Path(self.url).expanduser()

    def check_writable(self, what: str) -> None:
        """Raise InputError, before anything is sent, for a location ``what`` (a parameter's name)
        names that can't take a file: one that climbs with ``..`` (a run's params could otherwise
        write anywhere); a local path that is relative, a folder, or can't be written; a URL whose
        scheme Airflow has no filesystem for."""
        where = self.url
        if ".." in where.split("/"):
            raise InputError(f"{what} {where!r} climbs out of its folder with '..'; give the folder itself")
        if (path := self.local) is None:
            if not where.startswith("gs://"):
                self._object()
            return
        if not path.is_absolute():
            raise InputError(f"{what} {where!r} is relative, and a worker's folder is not yours to choose; give an "
                             "absolute path or a URL such as gs:// or s3://")
        if path.is_dir():
            raise InputError(f"{what} {where!r} is a folder; name the results file")
        if blocker := next((part for part in path.parents if part.exists() and not part.is_dir()), None):
            raise InputError(f"the results can't be written at {where!r}: {blocker} is a file, not a folder; give a "
                             "path whose folders are folders")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=path.parent).close()
        except OSError as exc:
            raise InputError(f"the results can't be written at {where!r} ({exc.strerror}); give a folder the "
                             "worker can write to") from None

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
            return self._hook().gcs.read_text(self.url)
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
            self._hook().gcs.upload(staged, self.url)
        else:
            ObjectStoragePath(f"file://{staged}").copy(self._object())

    def exists(self) -> bool:
        """Whether there is a file at this location."""
        if (path := self.local) is not None:
            return path.is_file()
        if self.url.startswith("gs://"):
            return self._hook().gcs.exists(self.url)
        return self._object().is_file()

    def delete(self) -> None:
        """Remove the file (nothing when it is gone already)."""
        if (path := self.local) is not None:
            path.unlink(missing_ok=True)
        elif self.url.startswith("gs://"):
            from google.api_core.exceptions import NotFound  # with google-cloud-storage, not up front

            with suppress(NotFound):
                self._hook().gcs.delete(self.url)
        else:
            target = self._object()
            if target.exists():
                target.unlink()

    def file_names(self) -> list[str]:
        """The names of the files in the folder this location names (none when there is no such folder)."""
        if (path := self.local) is not None:
            return [child.name for child in path.iterdir() if child.is_file()] if path.is_dir() else []
        if self.url.startswith("gs://"):
            return self._hook().gcs.names_in(self.url)
        folder = self._object()
        return [child.name for child in folder.iterdir() if child.is_file()] if folder.is_dir() else []

    def child(self, name: str) -> Location:
        """The file ``name`` in the folder this location names."""
        return Location(f"{self.url.rstrip('/')}/{name}", self._hook, self._conn_id)

    def download(self, destination: Path) -> None:
        """Copy the remote file to the local ``destination``, streamed.

        :raises InputError: there is no file at this location.
        """
        if self.url.startswith("gs://"):
            self._hook().gcs.download(self.url, destination)
        else:
            source = self._object()
            if not source.is_file():
                raise InputError(f"{self.url}: no such file; check input_path and storage_conn_id")
            source.copy(ObjectStoragePath(f"file://{destination}"))


@dataclass(frozen=True)
class Storage:
    """Where one task's files are read and written: ``conn_id`` for ObjectStoragePath URLs (None:
    the scheme's default connection), and ``hook`` for ``gs://`` (its Cloud Storage client)."""

    conn_id: str | None
    hook: GeminiHook

    def at(self, url: str) -> Location:
        """``url`` (a local path or a URL) as a Location of this storage."""
        hook = self.hook
        return Location(url, lambda: hook, self.conn_id)

    def folder(self, url: str) -> Location:
        """The folder ``url`` (``Location.file_names``, ``Location.child``), checked as ``output_path``
        is (``Location.check_writable``). :raises InputError: naming it as ``answer_store``."""
        folder = self.at(url.rstrip("/"))
        if ".." in folder.url.split("/"):
            raise InputError(f"answer_store {url!r} climbs out of its folder with '..'; give the folder itself")
        if (path := folder.local) is not None:
            if not path.is_absolute():
                raise InputError(f"answer_store {url!r} is relative; give an absolute path or a URL such as gs://")
            path.mkdir(parents=True, exist_ok=True)
        return folder


class UploadingResultsWriter(ResultsWriter):
    """Results for a remote output: written to a local file, uploaded whole once complete (so a
    reader never sees half a file), the local copy removed. The rows' pictures are uploaded into
    the folder beside the target (``images_folder_name``) first."""

    def __init__(self, target: Location, check: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 scratch: Path | None = None) -> None:
        self._folder = tempfile.mkdtemp(prefix="gemini-results-", dir=scratch)
        self.target = target
        super().__init__(Path(self._folder) / (target.url.rsplit("/", 1)[-1] or "results.jsonl"), check)

    @property
    def location(self) -> str:
        return self.target.url

    def image_location(self, name: str) -> str:
        return self._image_target(name).url

    def _image_target(self, name: str) -> Location:
        return self.target.beside(f"{self.images_folder.name}/{name}")

    def close(self) -> None:
        super().close()
        try:
            for image in sorted(self.images_folder.glob("*")) if self.images_folder.is_dir() else []:
                self._image_target(image.name).put(image)
            self.target.put(self.path)
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)

    def abort(self) -> None:
        super().abort()
        shutil.rmtree(self._folder, ignore_errors=True)


def results_writer(target: Location, check: Callable[[dict[str, Any]], dict[str, Any]] | None,
                   scratch: Path | None = None) -> ResultsWriter:
    """A writer of results rows to ``target``, whole or not at all: renamed into place on local
    disk, uploaded once complete elsewhere (staged in a folder under ``scratch``). ``check``
    validates each row (``core.schema``)."""
    if target.local is not None:
        return ResultsWriter(target.local, check)
    return UploadingResultsWriter(target, check, scratch)
