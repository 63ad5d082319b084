"""The submission ledger: what a task instance has uploaded and created, kept next to its output.

A retry, a worker killed after a create call, or a cleared task reads it to reattach to the jobs
it already created instead of paying twice. It is written (whole, see ``storage``) before and
after every create call, so a ``creating`` shard with no job name means the create may have gone
through: look the job up by its display name before creating another.

A ledger that exists but can't be read, or has a version this release does not know, is a
``LedgerError`` naming the file, never a fresh start: starting afresh could create, and pay for,
jobs that already exist.

Nothing read back is trusted alone: the ledger's shape is checked as it is read (``Ledger.from_json``),
the keys file's keys against the ledger's request counts per shard, with no key twice
(``LedgerStore.keys``), and each job the API answers for against the shard that recorded it: its
display name, which hashes the ledger's identity and fingerprint, and its request count where the
API reports one (``LedgerStore.recorded_job``). A mismatch is a ``LedgerError`` naming the file and the
way out, never a landing: a damaged keys file would otherwise land fewer rows, and a ledger naming
another input's job that input's answers.

Beside it lies the keys file (``<output_path>.gemini-batch-keys.jsonl``): each input key and its
shard, ``[key, shard_index]`` per line in input order, put there whole before the first create.
Landing reads the keys from it, so it never reads the input again.

Beside them, when the run reused earlier answers (``core.answers``), lies the reused rows file
(``<output_path>.gemini-batch-reused.jsonl``): the ``reused`` results rows, put there whole before
the first create, so that every try and the landing take the same rows from earlier answers,
whatever the answer store gained meanwhile. It is checked against the ledger's ``reused_rows``.

Shape (JSON), version 4::

    {"version": 3, "identity": str, "fingerprint": str, "first_submitted_at": float | null,
     "estimated_cost_usd": float | null,
     "keys_file": str | null (where the keys file is; null: none was kept),
     "media_files": [str] (media uploaded for the requests, removed after landing),
     "reused_file": str | null (where the reused rows file is; null: no row was reused),
     "reused_rows": int (how many rows it holds),
     "shards": [{"index": int, "requests": int, "display_name": str, "input_file": str | null,
                 "job": str | null, "status": "pending" | "creating" | "created" | "waiting",
                 "attempt": int, "tokens": int (estimated, for the project's batch quota)}]}

A ``waiting`` shard is uploaded but its job is not created yet: the project's batch quota had no
room (``core.limits.BatchQuota``, or the API's 429), and a later wave creates it. Version 3 is the
same without ``tokens`` and ``waiting``; version 2 also without ``reused_file`` and ``reused_rows``
(no row reused); version 1 (also a ledger without ``version``: it predates the field) also without
``keys_file``; it is read as a ledger with no keys file, whose keys come from the input.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .backend import BatchBackend
from .errors import LedgerError
from .jobs import JobStatus
from .shards import KeysMismatch, read_digests, read_keys
from .transient import is_not_found
from .vocabulary import is_job_name, job_name

PENDING, CREATING, CREATED, WAITING = "pending", "creating", "created", "waiting"
VERSION = 4
READS = (1, 2, 3, 4)
#: The way out of a ledger or keys file that can't be trusted, said in every such error.
WAY_OUT = ("Restore it, or upgrade the provider to the release that wrote it; delete the ledger only to submit "
           "everything anew, paying again for jobs that may already exist")


def ledger_location(output_path: str) -> str:
    """Where the ledger of the task writing ``output_path`` lives: beside it."""
    return f"{output_path}.gemini-batch.json"


def keys_location(output_path: str) -> str:
    """Where the keys file of the task writing ``output_path`` lives: beside it."""
    return f"{output_path}.gemini-batch-keys.jsonl"


def reused_location(output_path: str) -> str:
    """Where the reused rows of the task writing ``output_path`` live: beside it."""
    return f"{output_path}.gemini-batch-reused.jsonl"


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
    tokens: int = 0  # estimated tokens of its requests, counted against the project's batch quota


@dataclass
class Ledger:
    identity: str
    fingerprint: str
    shards: list[ShardRecord] = field(default_factory=list)
    first_submitted_at: float | None = None
    estimated_cost_usd: float | None = None  # for the summary of the try that lands, after a deferral
    keys_file: str | None = None
    media_files: list[str] = field(default_factory=list)  # URIs of the media uploaded for the requests
    reused_file: str | None = None
    reused_rows: int = 0

    @classmethod
    def from_json(cls, text: str | None, where: str) -> Ledger | None:
        """The ledger in ``text`` (read from ``where``); None when there is none (``text`` None).

        :raises LedgerError: ``text`` is not a ledger, one of another version, or one whose shape is
            wrong (no shard, a shard out of place, a job name no job has), naming ``where``.
        """
        if text is None:
            return None
        try:
            data: dict[str, Any] = json.loads(text)
            version = data.pop("version", 1)
            if version in READS:
                shards = [ShardRecord(**shard) for shard in data.pop("shards")]
                ledger = cls(shards=shards, **data)
                why = ledger._shape_error()
                if why is None:
                    return ledger
            else:
                why = f"it is of version {version!r}, and this release reads versions {READS}"
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            why = f"it is not a ledger this release can read ({type(exc).__name__}: {exc})"
        raise LedgerError(f"the ledger {where} records which batch jobs this task created, but {why}. {WAY_OUT}")

    def _shape_error(self) -> str | None:
        """What is wrong with the shape of a ledger read back, or None."""
        if not isinstance(self.identity, str) or not isinstance(self.fingerprint, str):
            return "its identity or fingerprint is not text"
        if not self.shards:
            return "it records no shard"
        for position, shard in enumerate(self.shards):
            if shard.index != position:
                return f"its shard at position {position} says it is shard {shard.index!r}"
            if not isinstance(shard.requests, int) or isinstance(shard.requests, bool) or shard.requests < 1:
                return f"shard {position} records {shard.requests!r} requests, not a count"
            if not isinstance(shard.display_name, str) or shard.status not in (PENDING, CREATING, CREATED, WAITING):
                return f"shard {position} has no display name or an unknown status ({shard.status!r})"
            if shard.job is not None and not is_job_name(shard.job):
                return f"shard {position} names {shard.job!r}, which is no batch job's name"
            if not isinstance(shard.input_file, str | None) or not isinstance(shard.attempt, int) or \
                    not isinstance(shard.tokens, int):
                return f"shard {position} has an input_file that is not a name, or an attempt or tokens not a count"
        if self.keys_file is not None and not isinstance(self.keys_file, str):
            return "its keys_file is not a path"
        if not isinstance(self.reused_file, str | None) or not isinstance(self.reused_rows, int) or \
                isinstance(self.reused_rows, bool) or self.reused_rows < 0 or \
                (self.reused_file is None) != (self.reused_rows == 0):
            return "its reused_file and reused_rows do not agree"
        if not isinstance(self.media_files, list) or not all(isinstance(uri, str) for uri in self.media_files):
            return "its media_files is not a list of names"
        if not all(isinstance(v, int | float | None) for v in (self.first_submitted_at, self.estimated_cost_usd)):
            return "its first_submitted_at or estimated_cost_usd is not a number"
        return None

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

    @property
    def waiting(self) -> list[ShardRecord]:
        """The shards uploaded and waiting for room in the project's batch quota."""
        return [shard for shard in self.shards if shard.status == WAITING]


class Stored(Protocol):
    """One file wherever it is kept (``storage.Location`` in the provider; anything with these
    methods in a notebook)."""

    url: str

    @property
    def local(self) -> Path | None: ...

    def read_text(self) -> str | None: ...

    def write_text(self, text: str) -> None: ...

    def put(self, staged: Path) -> None: ...

    def download(self, destination: Path) -> None: ...


class LedgerStore:
    """A task's ledger and keys file, at the ``ledger`` and ``keys`` locations."""

    def __init__(self, ledger: Stored, keys: Stored, reused: Stored | None = None) -> None:
        self.ledger = ledger
        self.keys_file = keys
        self.reused_file = reused

    def load(self) -> Ledger | None:
        """The ledger; None when there is none. :raises LedgerError: it can't be read."""
        return Ledger.from_json(self.ledger.read_text(), self.ledger.url)

    def save(self, ledger: Ledger) -> None:
        self.ledger.write_text(ledger.to_json())

    def put_keys(self, written: Path, ledger: Ledger) -> None:
        """Keep the keys file ``write_shards`` wrote, and record it in ``ledger`` (saved by the caller)."""
        self.keys_file.put(written)
        ledger.keys_file = self.keys_file.url

    def put_reused(self, written: Path, rows: int, ledger: Ledger) -> None:
        """Keep the reused rows file (``rows`` rows), and record it in ``ledger`` (saved by the caller)."""
        assert self.reused_file is not None, "a store that keeps reused rows is given their location"
        self.reused_file.put(written)
        ledger.reused_file, ledger.reused_rows = self.reused_file.url, rows

    def reused_copy(self, ledger: Ledger, folder: Path) -> Path | None:
        """A local copy (in ``folder``) of the ledger's reused rows file; None when it records none.

        :raises LedgerError: the file is not beside the ledger, or not there."""
        if ledger.reused_file is None:
            return None
        if self.reused_file is None or ledger.reused_file != self.reused_file.url:
            raise LedgerError(f"the ledger {self.ledger.url} keeps its reused rows at {ledger.reused_file}, not "
                              "beside it; move the files together")
        copy = folder / "reused.jsonl"
        try:
            if (path := self.reused_file.local) is not None:
                shutil.copyfile(path, copy)
            else:
                self.reused_file.download(copy)
        except (OSError, ValueError) as exc:
            raise LedgerError(f"the reused rows file {ledger.reused_file} of the ledger {self.ledger.url} can't "
                              f"be read ({exc}); restore it") from None
        return copy

    def digests(self, ledger: Ledger, folder: Path) -> Iterator[tuple[str, str]]:
        """``(key, request_digest)`` of each row whose digest the keys file records (a remote keys
        file is copied into ``folder`` first); none when it can't be read, as ``keys``, which every
        landing reads, then refuses it."""
        if (path := self.keys_file.local) is None:
            path = folder / "keys-digests.jsonl"
            try:
                self.keys_file.download(path)
            except ValueError:  # storage raises InputError (a ValueError) for a missing file
                return iter(())
        return read_digests(path) if path.is_file() else iter(())

    def keys(self, ledger: Ledger) -> Iterator[tuple[str, int]]:
        """``(key, shard_index)`` per input row, streamed from the ledger's keys file, checked as they
        go against the ledger's request counts per shard (``core.shards.read_keys``).

        :raises LedgerError: the ledger names a keys file that is not there, or one that does not
            match it, naming the file and the line.
        """
        if ledger.keys_file != self.keys_file.url:
            raise LedgerError(f"the ledger {self.ledger.url} keeps its keys at {ledger.keys_file}, not beside it at "
                              f"{self.keys_file.url}; move the two files together")
        if (path := self.keys_file.local) is not None:
            if not path.is_file():
                raise LedgerError(f"the keys file {path} of the ledger {self.ledger.url} is missing; restore it")
            yield from self._checked_keys(path, ledger)
            return
        with tempfile.TemporaryDirectory(prefix="gemini-keys-") as folder:
            copy = Path(folder) / "keys.jsonl"
            try:
                self.keys_file.download(copy)
            except ValueError as exc:  # storage raises InputError (a ValueError) for a missing file
                raise LedgerError(f"the keys file of the ledger {self.ledger.url} can't be read ({exc}); "
                                  "restore it") from None
            yield from self._checked_keys(copy, ledger)

    def _checked_keys(self, path: Path, ledger: Ledger) -> Iterator[tuple[str, int]]:
        try:
            yield from read_keys(path, [shard.requests for shard in ledger.shards])
        except KeysMismatch as exc:
            raise LedgerError(f"the keys file {self.keys_file.url} does not match the ledger {self.ledger.url}: "
                              f"{exc}. {WAY_OUT}") from None

    def recorded_job(self, record: ShardRecord, backend: BatchBackend) -> JobStatus:
        """The status of the job the ledger recorded for ``record`` (one poll of ``backend``), checked
        to be the job that shard created: its display name (which hashes the ledger's identity and
        fingerprint, ``display_name``) is the shard's, and so is its request count where the API
        reports one (0: not reported yet).

        :raises LedgerError: the shard records no job, the API no longer knows the job (404), or it
            is another input's job; naming the ledger, the shard, the job and the way out.
        """
        if record.job is None:  # landing asks every shard's job: one without is a ledger cut short
            raise LedgerError(f"the ledger {self.ledger.url} records no job for shard {record.index}, whose rows "
                              f"are to land. {WAY_OUT}")
        try:
            job = backend.job_status(job_name(record.job))
        except Exception as exc:
            if is_not_found(exc):
                raise LedgerError(
                    f"the ledger {self.ledger.url} says shard {record.index} is {record.job}, which the API no "
                    "longer knows (404: deleted, or of another project or key). Restore the ledger that names this "
                    "task's jobs, or delete it (and its keys file) to submit everything anew, paying again") from None
            raise
        if job.display_name == record.display_name and job.requests in (0, record.requests):
            return job
        raise LedgerError(
            f"the ledger {self.ledger.url} says shard {record.index} ({record.requests} requests, display name "
            f"{record.display_name!r}) is {job.name}, but that job is {job.display_name!r} with {job.requests} "
            f"requests: the ledger names another input's job. {WAY_OUT}")
