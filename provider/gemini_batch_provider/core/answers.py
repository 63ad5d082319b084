"""Answers reused by request: a row whose exact request was answered before lands from that answer,
and only the rest are sent.

Every results row records ``request_digest``, the SHA-256 of the model and the request exactly as
sent (``core.requests.request_digest``): contents, system instruction, generation config, response schema, tools,
whatever changes the answer. Before anything is built into a shard or sent online, each row's
digest is looked up among the reusable answers (``AnswerIndex``): the ``succeeded`` rows of the
results file the run replaces and of an answer store (``AnswerStore``), younger than a maximum age.
A row found lands from that answer (``path`` ``reused``, its ``answered_at`` and ``usage`` kept,
``reused_from`` the path that paid for it); ``failed``, ``invalid_output``, ``missing``, ``expired``
and ``cancelled`` answers are never reused, so those rows are sent again.

The answer store is a folder (local, ``gs://``, ``s3://``, ...) of parts, each a JSONL file of
results rows written whole under a name no other writer uses (``answers-<UTC time>-<random>.jsonl``):
two runs landing at once each add their own part, so neither loses or damages the other's, and a
reader never sees half a part (a local part is renamed into place; an object is put whole).
``AnswerStore.compact`` merges the parts into one, the newest answer per digest kept.

Rows refused as bad input under ``on_bad_row="land"`` (``core.plan.BatchPlan``) are settled here
too, in the same pass: each lands ``failed`` with ``path`` ``refused`` and the reason, beside the
reused rows, and is not sent.

Nothing here imports Airflow; the store reaches its folder through ``Folder`` (``storage`` in the
provider).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import secrets
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import orjson

from .errors import InputError, LedgerError
from .keys import KeyIndex
from .plan import RunInput
from .requests import request_digest
from .results import error_row
from .vocabulary import RowPath, RowStatus

PART_PREFIX, PART_SUFFIX = "answers-", ".jsonl"
DIGEST = re.compile(r"[0-9a-f]{64}")  # a request_digest: SHA-256, hex
LOOKUP_CHUNK = 1000  # digests looked up in one query (SQLite takes up to 32,766 parameters)


def _epoch(answered_at: Any) -> float | None:
    try:
        return datetime.fromisoformat(answered_at).timestamp() if isinstance(answered_at, str) else None
    except ValueError:
        return None


_PAID_BY = frozenset({RowPath.BATCH, RowPath.ONLINE, RowPath.FLEX})  # the paths that pay for an answer
_ANSWERED_BY = _PAID_BY | {RowPath.REUSED}
_FIELD_TYPES = (("key", str), ("text", str | None), ("usage", dict | None), ("embedding", list | None),
                ("images", list | None), ("error", dict | None), ("finish_reason", str | None))


def _rowid(digest: str) -> int:
    """The SQLite rowid of a digest: its first 63 bits."""
    return int(digest[:16], 16) >> 1


def _reusable(row: Any) -> bool:
    """Whether ``row`` is a ``succeeded`` results row of the shape ``core.results`` writes: a store is
    shared, so a row of another shape (written by hand, or damaged) is passed over, never landed."""
    if not isinstance(row, dict) or row.get("status") != RowStatus.SUCCEEDED or row.get("path") not in _ANSWERED_BY:
        return False
    if row.get("reused_from") is not None and row.get("reused_from") not in _PAID_BY:
        return False
    return all(isinstance(row.get(name), kind) for name, kind in _FIELD_TYPES)


class AnswerIndex:
    """Reusable answers by request digest, kept in a temporary SQLite file (the standard library's
    ``sqlite3``), so that memory stays flat however many answers there are. Use as a context manager.

    Answers are appended as they are read and indexed once, at the first lookup: sorting them then
    costs half of keeping a unique key in order through every insert. A digest answered more than
    once keeps every answer, and a lookup takes the newest.

    :param max_age_s: answers older than this many seconds are not reused (None: any age).
    """

    def __init__(self, max_age_s: float | None = None) -> None:
        import sqlite3  # here: a DAG file that imports the operators never needs it

        self._folder = tempfile.TemporaryDirectory(prefix="gemini-answers-")
        self._db = sqlite3.connect(Path(self._folder.name) / "answers.db", isolation_level=None,
                                   check_same_thread=False)
        self._db.executescript("""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -4000;  -- 4 MB while answers are added and sorted: a larger cache sorts no faster
            CREATE TABLE answers (id INTEGER NOT NULL, digest TEXT NOT NULL, at REAL NOT NULL, row BLOB NOT NULL);
            BEGIN;
        """)
        self._oldest = None if max_age_s is None else time.time() - max_age_s
        self._indexed = False
        self.size = 0  # answers read (a digest answered twice counts twice)

    def __enter__(self) -> AnswerIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()
        self._folder.cleanup()

    def add_lines(self, lines: Iterable[bytes]) -> int:
        """Add the reusable answers among results rows (raw JSONL lines): ``succeeded`` rows of the
        results' shape, with a digest and an answer time inside the maximum age. Lines that are not
        such rows are skipped. The number of reusable answers read."""
        added = 0

        def reusable() -> Iterator[tuple[int, str, float, bytes]]:
            nonlocal added
            for line in lines:
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if not _reusable(row):
                    continue
                digest, at = row.get("request_digest"), _epoch(row.get("answered_at"))
                young = at is not None and (self._oldest is None or at >= self._oldest)
                if young and isinstance(digest, str) and DIGEST.fullmatch(digest):
                    added += 1
                    yield _rowid(digest), digest, at, line.rstrip(b"\n")

        self._db.executemany("INSERT INTO answers VALUES (?, ?, ?, ?)", reusable())
        self.size += added
        return added

    def build_index(self) -> None:
        """Index the answers read so far (a lookup does so itself the first time; answers added
        after it are indexed as they come, more slowly). Keyed by the 63 bits a digest begins with:
        a lookup by integer is twice as fast as one by text."""
        if not self._indexed:
            self._db.execute("CREATE INDEX by_id ON answers (id, at)")
            self._db.execute("PRAGMA cache_size = -16000")  # 16 MB for the lookups, which it speeds up by a fifth
            self._indexed = True

    def get_many(self, digests: list[str]) -> dict[str, bytes]:
        """The newest answer (a raw JSON row) of each of ``digests`` (at most ``LOOKUP_CHUNK``) that
        has one, by digest: one query for them all, several times faster than one each."""
        if not self.size or not digests:
            return {}
        self.build_index()
        marks = ",".join("?" * len(digests))
        found = self._db.execute(f"SELECT digest, row FROM answers WHERE id IN ({marks}) ORDER BY at",
                                 list(map(_rowid, digests)))
        wanted = set(digests)
        # The whole digest, not its start; the newest answer comes last, so it stays.
        return {digest: row for digest, row in found if digest in wanted}

    def rows(self) -> Iterator[bytes]:
        """The newest answer of each digest, one raw JSON line each (without its newline)."""
        self.build_index()
        last: tuple[str, bytes] | None = None
        for digest, row in self._db.execute("SELECT digest, row FROM answers ORDER BY id, digest, at"):
            if last is not None and last[0] != digest:
                yield last[1]
            last = (digest, row)
        if last is not None:
            yield last[1]


class Digests:
    """Each row's ``request_digest`` by key (``(key, digest)`` pairs), kept in a temporary SQLite
    file; ``close`` removes it."""

    def __init__(self, digests: Iterable[tuple[str, str]]) -> None:
        import sqlite3

        self._folder = tempfile.TemporaryDirectory(prefix="gemini-digests-")
        self._db = sqlite3.connect(Path(self._folder.name) / "digests.db", isolation_level=None,
                                   check_same_thread=False)
        self._db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; CREATE TABLE digests "
                               "(key TEXT PRIMARY KEY, digest TEXT NOT NULL) WITHOUT ROWID; BEGIN;")
        self._db.executemany("INSERT OR IGNORE INTO digests VALUES (?, ?)", digests)

    def close(self) -> None:
        self._db.close()
        self._folder.cleanup()

    def get(self, key: str) -> str | None:
        found = self._db.execute("SELECT digest FROM digests WHERE key = ?", (key,)).fetchone()
        return None if found is None else found[0]


def refused_row(key: str, reason: str) -> dict[str, Any]:
    """The results row of a bad row refused before sending: ``failed``, ``path`` ``refused``, the
    reason in ``error`` (status ``INVALID_ARGUMENT``), nothing sent, nothing billed."""
    return error_row(key, RowPath.REFUSED, reason, "INVALID_ARGUMENT")


def reused_row(key: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The results row of ``key`` answered by ``answer`` (a row of an earlier run): its answer,
    usage and answer time, ``path`` ``reused``, and ``reused_from`` the path that paid for it."""
    return {**answer, "key": key, "path": RowPath.REUSED.value,
            "reused_from": answer.get("reused_from") or answer.get("path")}


@dataclass(frozen=True)
class Reuse:
    """What a run settles before sending: ``rows`` results rows (``reused`` ones from earlier
    answers, and the ``refused`` bad rows among them, in input order, in the file ``rows_file``),
    and the ``sent`` rows left to send, their requests built and checked once, as ``[key, request]``
    lines in the file ``to_send``. ``fingerprint`` hashes each reused row's key and request digest
    (``reuse_fingerprint``), so that a submission's fingerprint tells apart runs that send the same
    rows but reuse different answers."""

    rows_file: Path
    rows: int
    to_send: Path
    sent: int
    fingerprint: str
    refused: int = 0
    first_refusals: tuple[str, ...] = ()  # the reasons of the first few refused rows, for the log

    def narrowed(self, run_input: RunInput) -> RunInput:
        """``run_input`` as the stages after reuse read it: only the rows to send, not built again."""
        return dataclasses.replace(run_input, built=self.to_send) if self.rows else run_input


def reuse_fingerprint(pairs: Iterable[tuple[str, str]]) -> str:
    """The SHA-256 (hex) of ``(key, request_digest)`` pairs, in order."""
    digest = hashlib.sha256()
    for key, request in pairs:
        digest.update(orjson.dumps([key, request], option=orjson.OPT_APPEND_NEWLINE))
    return digest.hexdigest()


FIRST_REFUSALS = 3  # refused rows whose reasons the log names


def split_reused(run_input: RunInput, model: str, answers: AnswerIndex, folder: Path) -> Reuse:
    """Look every row's request up in ``answers`` (``LOOKUP_CHUNK`` rows a query); write the
    ``reused`` rows of those found into ``folder / "reused.jsonl"`` and the others' requests into
    ``folder / "to-send.jsonl"``. Builds every request, so a bad row fails here, before anything is
    sent (InputError), or, with ``run_input.refuse_bad_rows``, lands ``refused`` in the same file."""
    rows_file, to_send, rows, sent, refused = folder / "reused.jsonl", folder / "to-send.jsonl", 0, 0, 0

    first_refusals: list[str] = []

    def refuse(key: str, error: InputError) -> None:
        nonlocal rows, refused
        reused.write(orjson.dumps(refused_row(key, str(error)), option=orjson.OPT_APPEND_NEWLINE))
        rows, refused = rows + 1, refused + 1
        if len(first_refusals) < FIRST_REFUSALS:
            first_refusals.append(str(error))

    requests = run_input.requests(refuse)

    def reused_pairs() -> Iterator[tuple[str, str]]:
        nonlocal rows, sent
        while chunk := list(islice(requests, LOOKUP_CHUNK)):
            digests = [request_digest(model, request) for _, request in chunk]
            found = answers.get_many(digests)
            for (key, request), digest in zip(chunk, digests, strict=True):
                if digest in found:
                    reused.write(orjson.dumps(reused_row(key, orjson.loads(found[digest])),
                                              option=orjson.OPT_APPEND_NEWLINE))
                    rows += 1
                    yield key, digest
                else:
                    sending.write(orjson.dumps([key, request], option=orjson.OPT_APPEND_NEWLINE))
                    sent += 1

    with rows_file.open("wb") as reused, to_send.open("wb") as sending:
        fingerprint = reuse_fingerprint(reused_pairs())
    return Reuse(rows_file, rows, to_send, sent, fingerprint, refused, tuple(first_refusals))


def reused_rows(path: Path, expected_rows: int, where: str, keys: KeyIndex) -> Iterator[dict[str, Any]]:
    """The rows of a reused rows file read back (``path``, a copy of the file at ``where``), each
    checked as it is read: a results row of path ``reused`` (with its request digest) or ``refused``
    (``failed``) whose key is new to ``keys`` (and added to it); the file ends after
    ``expected_rows`` of them. A caller writes rows as they come and
    drops what it wrote when this raises.

    :raises LedgerError: naming ``where`` and the line, when the file does not match its ledger."""
    def mismatch(why: str) -> LedgerError:
        return LedgerError(f"the reused rows file {where} does not match its ledger: {why}. Restore it, or delete "
                           "the ledger to decide the reuse anew")

    rows = 0
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                row = orjson.loads(line)
                path = row.get("path") if isinstance(row, dict) else None
                reused = path == RowPath.REUSED and isinstance(row.get("request_digest"), str)
                refused = path == RowPath.REFUSED and row.get("status") == RowStatus.FAILED
                if not ((reused or refused) and isinstance(row.get("key"), str)):
                    raise mismatch(f"line {number} is neither a reused nor a refused results row")
                if not keys.add(row["key"]):
                    raise mismatch(f"line {number} repeats key {row['key']!r}")
                rows += 1
                yield row
    except (OSError, orjson.JSONDecodeError) as exc:
        raise mismatch(f"it can't be read ({exc})") from None
    if rows != expected_rows:
        raise mismatch(f"it holds {rows} rows where the ledger records {expected_rows}")


def check_reused_rows(path: Path, expected_rows: int, where: str, keys: KeyIndex) -> str:
    """Check a reused rows file read back (``reused_rows``); its ``reuse_fingerprint``.

    :raises LedgerError: naming ``where``, when the file does not match its ledger."""
    rows = reused_rows(path, expected_rows, where, keys)
    return reuse_fingerprint((row["key"], row["request_digest"]) for row in rows if row["path"] == RowPath.REUSED)


def reused_from_file(path: Path, expected_rows: int, where: str, run_input: RunInput, folder: Path) -> Reuse:
    """The reuse a ledger recorded: its reused rows (``path``, checked, ``check_reused_rows``); the
    rows of ``run_input`` it does not hold are the ones to send (into ``folder / "to-send.jsonl"``).

    :raises LedgerError: the file does not match its ledger. :raises InputError: a bad row."""
    with KeyIndex() as keys:
        fingerprint = check_reused_rows(path, expected_rows, where, keys)
        to_send, sent = folder / "to-send.jsonl", 0
        with to_send.open("wb") as sending:
            for key, request in run_input.requests():
                if keys.value(key) is None:
                    sending.write(orjson.dumps([key, request], option=orjson.OPT_APPEND_NEWLINE))
                    sent += 1
    return Reuse(path, expected_rows, to_send, sent, fingerprint)


class Folder(Protocol):
    """A folder wherever it is kept (``storage.Location`` of a folder in the provider)."""

    url: str

    def file_names(self) -> list[str]: ...

    def child(self, name: str) -> Any: ...  # a ``core.ledger.Stored`` with ``delete()``


class AnswerStore:
    """The answer store at ``folder``: parts of ``succeeded`` results rows (see the module docstring)."""

    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    def parts(self) -> list[str]:
        return sorted(name for name in self.folder.file_names()
                      if name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX))

    def read_into(self, index: AnswerIndex, scratch: Path, log: logging.Logger) -> int:
        """Add every part's answers to ``index``, then index them (``AnswerIndex.build_index``: the
        store is the last source a run reads); the number of answers read. A part listed and gone
        before it is read (compacted meanwhile) is passed over: its answers are then sent again,
        never lost from the store."""
        added = 0
        with tempfile.TemporaryDirectory(prefix="gemini-store-", dir=scratch) as folder:
            for name in self.parts():
                copy = Path(folder) / name
                try:
                    self.folder.child(name).download(copy)
                except (OSError, ValueError):  # storage says a missing file is an InputError (a ValueError)
                    log.info("Answer store part %s went before it was read (compacted); passed over.", name)
                    continue
                with copy.open("rb") as lines:
                    added += index.add_lines(lines)
                copy.unlink()
        index.build_index()
        return added

    def append(self, rows_file: Path) -> str | None:
        """Add ``rows_file`` (results rows) as a new part, put whole; its name (None: nothing to add)."""
        if rows_file.stat().st_size == 0:
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        name = f"{PART_PREFIX}{stamp}-{secrets.token_hex(8)}{PART_SUFFIX}"
        self.folder.child(name).put(rows_file)
        return name

    def compact(self, scratch: Path, log: logging.Logger) -> tuple[int, int]:
        """Merge every part into one, the newest answer per digest kept: the new part is put whole
        before the parts merged into it are deleted, so a reader always finds every answer (once
        or twice). Parts added meanwhile are left as they are. ``(parts merged, answers kept)``."""
        merged = self.parts()
        with AnswerIndex() as index, tempfile.TemporaryDirectory(prefix="gemini-compact-", dir=scratch) as folder:
            self.read_into(index, Path(folder), log)
            joined, kept = Path(folder) / "compacted.jsonl", 0
            with joined.open("wb") as out:
                for row in index.rows():
                    out.write(row + b"\n")
                    kept += 1
            self.append(joined)
        for name in merged:
            self.folder.child(name).delete()
        log.info("Answer store %s: %d parts compacted into one of %d answers.", self.folder.url, len(merged), kept)
        return len(merged), kept
