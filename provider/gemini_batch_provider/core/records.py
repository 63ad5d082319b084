"""Reading input records as a stream: a list of dicts, or a local JSONL or CSV file.

Records are yielded one at a time so that memory stays flat however large the file is.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

Records = Iterable[dict[str, Any]] | str | Path


class InputError(ValueError):
    """Bad input, found before anything is uploaded or billed; the message names the row and the fix."""


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}, line {number}: not valid JSON ({exc}); fix or remove the line") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
            yield record


def _csv(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def iter_records(source: Records) -> Iterator[dict[str, Any]]:
    """Yield the records of ``source``: an iterable of dicts, or a path to a ``.jsonl``/``.csv`` file.

    Raises InputError for a missing file, an unknown extension, or a line that is not a JSON object.
    """
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise InputError(f"input file {path} does not exist; pass a local .jsonl or .csv path or a list of dicts")
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            yield from _jsonl(path)
        elif suffix == ".csv":
            yield from _csv(path)
        else:
            raise InputError(f"input file {path}: unknown extension {suffix!r}; use .jsonl or .csv")
        return
    for index, record in enumerate(source):
        if not isinstance(record, dict):
            raise InputError(f"record {index}: expected a dict, got {type(record).__name__}")
        yield record
