"""The submission ledger: what a task instance has uploaded and created, kept next to its output.

A retry, a worker killed after a create call, or a cleared task reads it to reattach to the jobs
it already created instead of paying twice. It is written (whole, see ``storage``) before and
after every create call, so a ``creating`` shard with no job name means the create may have gone
through: look the job up by its display name before creating another.

A ledger that exists but can't be read, or has a version this release does not know, is a
``LedgerError`` naming the file, never a fresh start: starting afresh could create, and pay for,
jobs that already exist.

Shape (JSON), version 1 (a ledger without ``version`` is of this shape too: it predates the field)::

    {"version": 1, "identity": str, "fingerprint": str, "first_submitted_at": float | null,
     "estimated_cost_usd": float | null,
     "media_files": [str] (media uploaded for the requests, removed after landing),
     "shards": [{"index": int, "requests": int, "display_name": str, "input_file": str | null,
                 "job": str | null, "status": "pending" | "creating" | "created", "attempt": int}]}
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import LedgerError

PENDING, CREATING, CREATED = "pending", "creating", "created"
VERSION = 1


def ledger_location(output_path: str) -> str:
    """Where the ledger of the task writing ``output_path`` (a local path or ``gs://``) lives: beside it."""
    return f"{output_path}.gemini-batch.json"


def display_name(identity: str, fingerprint: str, index: int, shards: int, attempt: int = 0) -> str:
    """A batch job's display name: readable, at most 128 characters, and unique to the task instance,
    its input, the shard and the shard's submission attempt (the last 16 characters hash them)."""
    tag = hashlib.sha256(f"{identity}\n{fingerprint}\n{index}\n{attempt}".encode()).hexdigest()[:16]
    suffix = f" {index + 1}/{shards} {tag}"
    return identity[: 128 - len(suffix)] + suffix


@dataclass
class ShardRecord:
    index: int
    requests: int
    display_name: str
    input_file: str | None = None
    job: str | None = None
    status: str = PENDING
    attempt: int = 0  # how many times this shard was submitted anew after its job failed or expired


@dataclass
class Ledger:
    identity: str
    fingerprint: str
    shards: list[ShardRecord] = field(default_factory=list)
    first_submitted_at: float | None = None
    estimated_cost_usd: float | None = None  # for the summary of the try that lands, after a deferral
    media_files: list[str] = field(default_factory=list)  # URIs of the media uploaded for the requests

    @classmethod
    def from_json(cls, text: str | None, where: str) -> Ledger | None:
        """The ledger in ``text`` (read from ``where``); None when there is none (``text`` None).

        :raises LedgerError: ``text`` is not a ledger, or one of another version, naming ``where``.
        """
        if text is None:
            return None
        try:
            data: dict[str, Any] = json.loads(text)
            version = data.pop("version", VERSION)
            if version == VERSION:
                shards = [ShardRecord(**shard) for shard in data.pop("shards")]
                return cls(shards=shards, **data)
            why = f"it is of version {version!r}, and this release reads version {VERSION}"
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            why = f"it is not a ledger this release can read ({type(exc).__name__}: {exc})"
        raise LedgerError(
            f"the ledger {where} records which batch jobs this task created, but {why}. Restore it, or upgrade "
            "the provider to the release that wrote it; delete it only to submit everything anew, paying again "
            "for jobs that may already exist")

    def to_json(self) -> str:
        return json.dumps({"version": VERSION, **asdict(self)}, indent=1)

    def add_media(self, uris: list[str]) -> bool:
        """Record uploaded media (once each); whether any was new."""
        merged = sorted({*self.media_files, *uris})
        changed, self.media_files = merged != sorted(self.media_files), merged
        return changed

    @property
    def job_names(self) -> list[str]:
        return [shard.job for shard in self.shards if shard.job]
