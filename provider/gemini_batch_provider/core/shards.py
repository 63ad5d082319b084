"""The Batch API's input files, split into shards: one batch job per shard.

Each line is ``{"key": ..., "request": GenerateContentRequest}`` (format per
https://ai.google.dev/gemini-api/docs/batch-mode#input-file). Lines go to the current shard until
the next one would pass a limit: requests per job, bytes per file (the Files API takes up to 2 GB
a file, https://ai.google.dev/gemini-api/docs/files), or estimated tokens per job (the Batch API
limits the tokens a project may have enqueued per model, https://ai.google.dev/gemini-api/docs/rate-limits#batch-mode).
Files are written as a stream, and so is each key's shard (``keys.jsonl``), which the ledger keeps
so that landing knows each row's job without reading the input again. The shard of each key is
also a pure function of the input and the limits (``shard_of_keys``), for jobs without a ledger.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .cost import Estimate
from .errors import InputError, LedgerError
from .keys import KeyIndex
from .limits import ShardLimits
from .requests import request_digest
from .tokens import estimate_split


@dataclass
class Shard:
    """One shard: its index, file, number of requests, bytes and estimated tokens."""

    index: int
    path: Path | None = None
    requests: int = 0
    size_bytes: int = 0
    tokens: int = 0


@dataclass
class ShardedInput:
    """What ``write_shards`` wrote; ``fingerprint`` hashes every line and the ``salt``; ``estimate``
    adds up the requests' estimated tokens."""

    shards: list[Shard] = field(default_factory=list)
    fingerprint: str = ""
    estimate: Estimate = field(default_factory=Estimate)

    @property
    def requests(self) -> int:
        return sum(shard.requests for shard in self.shards)


def _lines(requests: Iterable[tuple[str, dict[str, Any]]], limits: ShardLimits, estimate: Estimate | None = None,
           model: str | None = None) -> Iterator[tuple[int, str, bytes, int, dict[str, Any]]]:
    """``(shard_index, key, line, tokens, request)`` per request, in input order; ``estimate`` adds
    them up, with the thinking of ``model`` (the limits count prompt and answer tokens)."""
    index, count, size, tokens = 0, 0, 0, 0
    for key, request in requests:
        line = orjson.dumps({"key": key, "request": request}, option=orjson.OPT_APPEND_NEWLINE)
        split = estimate_split(request, model)
        if estimate is not None:
            estimate.add(split)
        cost = split.prompt + split.output + split.pictures
        if len(line) > limits.max_bytes:
            raise InputError(f"row with key {key!r}: its request takes {len(line)} bytes, more than max_bytes "
                             f"({limits.max_bytes}) per input file; shorten it or raise the limit")
        if limits.max_tokens is not None and cost > limits.max_tokens:
            raise InputError(f"row with key {key!r}: about {cost} tokens, more than max_tokens ({limits.max_tokens}) "
                             "per job; shorten it or raise the limit")
        full = (
            (limits.max_requests is not None and count + 1 > limits.max_requests)
            or size + len(line) > limits.max_bytes
            or (limits.max_tokens is not None and tokens + cost > limits.max_tokens)
        )
        if count and full:
            index, count, size, tokens = index + 1, 0, 0, 0
        count, size, tokens = count + 1, size + len(line), tokens + cost
        yield index, key, line, cost, request


def shard_of_keys(requests: Iterable[tuple[str, dict[str, Any]]], limits: ShardLimits) -> Iterator[tuple[str, int]]:
    """``(key, shard_index)`` per request: the shards ``write_shards`` put them in."""
    for index, key, _, _, _ in _lines(requests, limits):
        yield key, index


KEYS_FILE = "keys.jsonl"


class KeysMismatch(LedgerError):
    """A keys file that is not the one ``write_shards`` wrote for these shards; says where it differs."""


def read_keys(path: Path, shard_requests: list[int]) -> Iterator[tuple[str, int]]:
    """``(key, shard_index)`` per request, from the ``keys.jsonl`` that ``write_shards`` wrote for
    shards of ``shard_requests`` requests each, checked as they go: each line a ``[key, shard]``
    pair (or ``[key, shard, request_digest]``), no key twice (a ``KeyIndex`` on disk: memory stays
    flat), and as many keys per shard as it had requests. That last check ends the stream, so a
    consumer that reads every key before writing anything (``core.results.join_results``) writes
    nothing from a bad file.

    :raises KeysMismatch: naming the line, or the counts per shard.
    """
    counts = [0] * len(shard_requests)
    with KeyIndex() as seen, path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            try:
                key, shard, *digest = orjson.loads(line)
                if len(digest) > 1 or not all(isinstance(d, str) for d in digest):
                    raise ValueError
            except (orjson.JSONDecodeError, ValueError, TypeError):
                raise KeysMismatch(f"line {number} is not a [key, shard] pair") from None
            if not isinstance(key, str) or not isinstance(shard, int) or not 0 <= shard < len(counts):
                raise KeysMismatch(f"line {number} names shard {shard!r} of key {key!r}; there are "
                                   f"{len(counts)} shards")
            if not seen.add(key):
                raise KeysMismatch(f"line {number} repeats the key {key!r}")
            counts[shard] += 1
            yield key, shard
    if counts != shard_requests:
        raise KeysMismatch(f"it holds {counts} keys per shard where the shards had {shard_requests} requests")


def read_digests(path: Path) -> Iterator[tuple[str, str]]:
    """``(key, request_digest)`` of each line of a keys file that records one. Lines that do not
    are passed over: ``read_keys``, which every landing reads too, refuses a damaged file."""
    with path.open("rb") as lines:
        for line in lines:
            try:
                key, _, digest = orjson.loads(line)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue
            if isinstance(key, str) and isinstance(digest, str):
                yield key, digest


def write_shards(requests: Iterable[tuple[str, dict[str, Any]]], folder: Path, limits: ShardLimits,
                 salt: str = "", model: str | None = None) -> ShardedInput:
    """Write ``(key, request)`` pairs as batch input JSONL files ``requests-NNNNN.jsonl`` in ``folder``,
    and each key's shard as ``[key, shard_index]`` lines in ``folder / KEYS_FILE`` (see ``read_keys``),
    ``[key, shard_index, request_digest]`` given the ``model`` (``core.requests.request_digest``).

    Errors raised by ``requests`` (InputError for bad rows) or by the limits propagate, and the
    files written so far are removed: files that exist are complete.
    """
    written = ShardedInput()
    digest = hashlib.sha256(salt.encode())
    out = None
    keys = (folder / KEYS_FILE).open("wb")
    try:
        for index, key, line, cost, request in _lines(requests, limits, written.estimate, model):
            entry = [key, index] if model is None else [key, index, request_digest(model, request)]
            keys.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
            if index == len(written.shards):
                if out is not None:
                    out.close()
                shard = Shard(index=index, path=folder / f"requests-{index:05d}.jsonl")
                written.shards.append(shard)
                out = shard.path.open("wb")  # type: ignore[union-attr]
            shard = written.shards[index]
            out.write(line)  # type: ignore[union-attr]
            digest.update(line)
            shard.requests += 1
            shard.size_bytes += len(line)
            shard.tokens += cost
    except BaseException:
        if out is not None:
            out.close()
        keys.close()
        for shard in written.shards:
            shard.path.unlink(missing_ok=True)  # type: ignore[union-attr]
        (folder / KEYS_FILE).unlink()
        raise
    if out is not None:
        out.close()
    keys.close()
    written.fingerprint = digest.hexdigest()
    return written
