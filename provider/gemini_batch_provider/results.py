"""Reading a results file back: the rows a task landed, for the tasks downstream of it.

The operators return a summary (XCom), never the rows; an Asset outlet's event carries the same
summary as its ``extra``. Either one, or the file's path, is enough to read the rows back, from
wherever ``output_path`` put them::

    from gemini_batch_provider.results import read_results, results_frame

    @task
    def report(summary: dict) -> None:
        for row in read_results(summary, status="failed"):  # streamed, one dict at a time
            print(row["key"], row["error"]["message"])
        frame = results_frame(summary)  # a pandas DataFrame: pip install airflow-provider-gemini-batch[pandas]

Each row is a dict as ``core.results`` describes it (``key``, ``status``, ``path``, ``text``,
``parsed``, ``usage``, ``error``, ...).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.vocabulary import RowStatus
from gemini_batch_provider.hooks import DEFAULT_CONN_ID
from gemini_batch_provider.storage import Location

if TYPE_CHECKING:
    import pandas


def read_results(source: Mapping[str, Any] | str, *, status: str | Iterable[str] | None = None,
                 storage_conn_id: str | None = None, gemini_conn_id: str = DEFAULT_CONN_ID) -> Iterator[dict[str, Any]]:
    """The rows of a results file, one dict at a time, in the file's order; memory stays flat
    whatever its size (a remote file is downloaded to a temporary file first, removed afterwards).

    :param source: an operator's summary (its XCom, or an Asset event's ``extra``), or the file's
        ``output_path``: a local path, ``gs://`` or any URL Airflow's ObjectStoragePath reads.
    :param status: only the rows of this status, or of these (``succeeded``, ``failed``,
        ``invalid_output``, ``missing``, ``expired``, ``cancelled``); None: every row.
    :param storage_conn_id: the connection for ObjectStoragePath URLs (an ``aws`` one for ``s3://``),
        as the task that wrote the file was given.
    :param gemini_conn_id: the connection whose Cloud Storage client reads ``gs://``.
    :raises InputError: (a ValueError) an unknown status, a summary without ``output_path``, or no
        file at the path.
    """
    url = _output_path(source)
    wanted = _statuses(status)
    location = Location(url, lambda: _hook(gemini_conn_id), storage_conn_id)
    if (path := location.local) is not None:
        if not path.is_file():
            raise InputError(f"no results file at {url}; the task that writes it has not landed (yet)")
        yield from _rows(path, wanted)
        return
    with tempfile.TemporaryDirectory(prefix="gemini-results-") as folder:
        copy = Path(folder) / "results.jsonl"
        location.download(copy)
        yield from _rows(copy, wanted)


def results_frame(source: Mapping[str, Any] | str, *, status: str | Iterable[str] | None = None,
                  storage_conn_id: str | None = None, gemini_conn_id: str = DEFAULT_CONN_ID) -> pandas.DataFrame:
    """The rows of ``read_results`` as a pandas DataFrame, a column per field (nested fields such
    as ``usage`` and ``error`` as dicts). Needs pandas: the provider's ``pandas`` extra.

    :raises ImportError: pandas is not installed, saying how to install it.
    :raises InputError: as ``read_results``."""
    try:
        import pandas
    except ImportError:
        raise ImportError("results_frame needs pandas: pip install 'airflow-provider-gemini-batch[pandas]'") from None
    return pandas.DataFrame.from_records(read_results(source, status=status, storage_conn_id=storage_conn_id,
                                                      gemini_conn_id=gemini_conn_id))


def _output_path(source: Mapping[str, Any] | str) -> str:
    if isinstance(source, Mapping):
        if not isinstance(source.get("output_path"), str):
            raise InputError(f"a summary names its results file in 'output_path'; this one has keys "
                             f"{sorted(source)}. Give the operator's summary (its XCom) or the file's path")
        return source["output_path"]
    return str(source)


def _statuses(status: str | Iterable[str] | None) -> frozenset[str] | None:
    if status is None:
        return None
    wanted = frozenset([status] if isinstance(status, str) else status)
    if unknown := sorted(wanted - set(RowStatus)):
        raise InputError(f"unknown row status {unknown}; a row's status is one of {[s.value for s in RowStatus]}")
    return wanted


def _rows(path: Path, wanted: frozenset[str] | None) -> Iterator[dict[str, Any]]:
    with path.open("rb") as lines:
        for line in lines:
            row = orjson.loads(line)
            if wanted is None or row["status"] in wanted:
                yield row


def _hook(gemini_conn_id: str) -> Any:
    from gemini_batch_provider.hooks.gemini import GeminiHook  # the SDK: only for gs://

    return GeminiHook(gemini_conn_id)
