"""The Gemini Batch API's input file: one ``{"key": ..., "request": GenerateContentRequest}`` per line.

Format per https://ai.google.dev/gemini-api/docs/batch-mode (input file). Written as a stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BatchInput:
    """A written input file: its path, its number of requests and its size in bytes."""

    path: Path
    requests: int
    size_bytes: int


def write_batch_input(requests: Iterable[tuple[str, dict[str, Any]]], path: Path) -> BatchInput:
    """Write ``(key, request)`` pairs as batch input JSONL to ``path``; returns what was written.

    Errors raised by ``requests`` (InputError for bad rows) propagate and the partial file is removed,
    so a file that exists is complete.
    """
    count = 0
    try:
        with path.open("w", encoding="utf-8") as out:
            for key, request in requests:
                out.write(json.dumps({"key": key, "request": request}, ensure_ascii=False))
                out.write("\n")
                count += 1
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return BatchInput(path=path, requests=count, size_bytes=path.stat().st_size)
