"""The one contract between core and a batch API: what a stage asks of the Gemini Developer API or
of Vertex AI, typed, so that core never asks which of the two it talks to.

The provider has one backend per API (``backends.gemini_api``, ``backends.vertex_ai``), chosen once
from the connection (``hooks.connection.backend_for``). Core imports only these Protocols; a test or
a notebook may hand core any object that has the methods.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from .jobs import JobStatus


class JobWatch(Protocol):
    """What the waiting engine (``core.waiting``) asks: a job's status, and its cancel, on an event loop."""

    async def ajob_status(self, name: str) -> JobStatus:
        """One poll of job ``name``; raises the API's or the transport's error (``core.transient``)."""
        ...

    async def acancel(self, name: str) -> None:
        """Ask the API to cancel job ``name`` (it ends CANCELLED some time later)."""
        ...


class BatchBackend(JobWatch, Protocol):
    """One batch API: where a run's files go, how its jobs are created, read, found and removed.

    Names are the API's own: a job is ``batches/<id>`` (Gemini API) or
    ``projects/<p>/locations/<l>/batchPredictionJobs/<id>`` (Vertex AI); a file is ``files/<id>``
    or a ``gs://`` URI. Every method raises the SDK's errors as they come (``core.transient`` tells
    the transient ones apart), and ``InputError`` for a plan or setting this API can't run.
    """

    #: ``gemini`` or ``vertexai``: the namespace lineage names the jobs in.
    source: str
    #: Whether media given as ``gs://`` URIs go into requests as they are (the API reads them).
    takes_gcs_media: bool
    #: Whether uploaded media expire (the Files API keeps a file 48 h), so that a slow job's rows fail.
    media_expire: bool
    #: Whether a batch job takes a ``priority`` (the Gemini Developer API's Batch resource has one).
    takes_priority: bool

    def check_plan(self, model: str, method: str, embeddings: bool) -> None:
        """Refuse, before anything is uploaded or billed, a model the API does not know, one that
        lacks ``method`` (``generateContent``, ``embedContent``), or a plan the API can't batch.

        :raises InputError: naming the model or setting and the fix."""
        ...

    def count_tokens(self, model: str, contents: list[dict[str, Any]]) -> int:
        """The prompt tokens of ``contents`` (wire-shaped ``Content`` dicts) by ``countTokens`` (not billed)."""
        ...

    def upload_input(self, path: Path, display_name: str, index: int) -> str:
        """Put shard ``index``'s JSONL where a job reads it; the source a create takes."""
        ...

    def create_job(self, model: str, src: str, display_name: str, index: int, embeddings: bool,
                   priority: int | None = None) -> str:
        """Create the batch job of shard ``index`` from ``src`` (with ``priority``, when the backend
        ``takes_priority``); its name. A 5xx or dropped connection may have created it anyway: the
        caller looks it up by ``display_name``."""
        ...

    def find_jobs(self, display_names: Iterable[str]) -> dict[str, str]:
        """The name of the job with each display name (the newest), by display name; names with
        no job are left out."""
        ...

    def job_status(self, name: str) -> JobStatus:
        """One poll of job ``name`` (a 404 raises the SDK's ``ClientError``)."""
        ...

    def cancel(self, name: str) -> None:
        """Ask the API to cancel job ``name``."""
        ...

    def download(self, name: str, destination: Path) -> None:
        """Stream a file the API keeps for a job (its output) to a local path."""
        ...

    def delete(self, name: str) -> None:
        """Delete a file uploaded for a run (a shard's input, or a medium), by name or URI."""
        ...

    async def upload_media(self, path: Path, mime: str, sha256: str) -> str:
        """Upload one medium (once per content: the same content gives the same URI); its URI."""
        ...

    def read_media(self, uri: str, destination: Path) -> None:
        """Download a ``gs://`` medium the API does not read itself (``takes_gcs_media`` False)."""
        ...

    def jobs_url(self, names: Sequence[str]) -> str:
        """Where a user sees these jobs in Google's console (``links``)."""
        ...
