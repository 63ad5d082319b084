"""Reading input records as a stream: a list of dicts, or a local JSONL or CSV file.

Records are yielded one at a time so that memory stays flat however large the file is.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from .errors import InputError

Records = Iterable[dict[str, Any]] | str | Path


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:  # orjson reads a line in a fifth of the time; what it refuses, the standard library reads below
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                record = _json_line(path, number, raw)
                if record is None:
                    continue
            if not isinstance(record, dict):
                raise InputError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
            yield record


def _json_line(path: Path, number: int, raw: bytes) -> Any:
    """A line orjson refused, read by the standard library's ``json``, which also takes what orjson
    does not (NaN, integers past 64 bits, unpaired surrogate escapes): the record, None for a blank
    line. :raises InputError: naming the line, for one that is not UTF-8 or not JSON."""
    try:  # as in a CSV, a byte-order mark some editors write first is no part of the data
        line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}, line {number}: not UTF-8 (byte {exc.start + 1} of the line); save the "
                         "file as UTF-8") from None
    if not line.strip():
        return None
    try:
        return json.loads(line)
    except ValueError as exc:
        raise InputError(f"{path}, line {number}: not valid JSON ({exc}); fix or remove the line") from None


def _csv(path: Path) -> Iterator[dict[str, Any]]:
    number = 0  # the physical line being read, for the messages

    def lines() -> Iterator[str]:
        nonlocal number
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:  # a spreadsheet's UTF-8 starts with a byte-order mark, which is no part of the header
                    yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise InputError(f"{path}, line {number}: not UTF-8; save the file as UTF-8") from None

    reader = csv.DictReader(lines(), strict=True)
    try:
        header = reader.fieldnames or []
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:  # DictReader would keep only the last column of each name
            raise InputError(f"{path}, line 1: the header names column(s) {repeated} more than once, and only one "
                             "column of a name can be read; rename the columns so that each name is unique")
        for record in reader:
            if None in record:  # DictReader files the cells beyond the header under None
                raise InputError(f"{path}, line {number}: more cells than the header has columns; "
                                 "quote cells that hold commas")
            yield record
    except csv.Error as exc:
        raise InputError(f"{path}, line {number}: not valid CSV ({exc}); fix the quoting") from None


def iter_records(source: Records) -> Iterator[dict[str, Any]]:
    """Yield the records of ``source``: an iterable of dicts, or a path to a ``.jsonl``/``.csv`` file.

    Raises InputError for a missing file, an unknown extension, or a line that is not a JSON object.
    """
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.exists():
            raise InputError(f"input file {path} does not exist; pass a local .jsonl or .csv path or a list of dicts")
        if not path.is_file():  # a folder, FIFO, socket or device: opening a FIFO would wait for a writer
            raise InputError(f"input file {path} is not a regular file; pass the path of a .jsonl or .csv file")
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
