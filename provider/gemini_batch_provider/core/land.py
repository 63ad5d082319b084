"""Landing ended batch jobs: each job's output downloaded as a stream and joined to the keys.

``land`` writes one results row per key (``core.results.join_results``) and hands back the keys
to run again online: rows answered with a retryable error (``rerun_failed``) and rows that got no
answer because a deadline cut their job short (``rerun_unanswered``). ``endings_error`` then fails
the task, after landing, when jobs did not succeed. The API is reached through a
``core.backend.BatchBackend``, so this module holds no client and no Airflow. ``keys_by_shard``
says which job answers each input row.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import BatchBackend
from .errors import JobEndedBadly
from .jobs import JobStatus
from .ledger import WAITING, Ledger, LedgerStore
from .limits import ShardLimits
from .plan import RunInput
from .requests import iter_keys
from .results import ResultsWriter, join_results
from .shards import shard_of_keys
from .transient import is_retryable_error
from .vocabulary import ANSWERED, ENDED_BADLY, JobState, RowStatus

NO_RESULT = {  # the status of a row its job gave no answer for, by the job's ending (else missing)
    JobState.EXPIRED: RowStatus.EXPIRED,
    JobState.CANCELLED: RowStatus.CANCELLED,
}


@dataclass(frozen=True)
class Rerun:
    """Which rows go online instead of landing as the batch left them.

    :param failed: rows answered with a retryable error (``core.transient.is_retryable_error``: gRPC's
        RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED or INTERNAL, or HTTP 408/429/5xx), and rows
        with no readable answer.
    :param unanswered: rows of jobs cut short (``expired``, ``cancelled``, ``missing``).
    """

    failed: bool = False
    unanswered: bool = False

    def __call__(self, row: dict[str, Any]) -> bool:
        if row["status"] == RowStatus.MISSING:  # no answer at all, whatever the job's ending: lost, not refused
            return self.unanswered or self.failed
        if row["status"] in (RowStatus.EXPIRED, RowStatus.CANCELLED):
            return self.unanswered
        return self.failed and row["status"] == RowStatus.FAILED and is_retryable_error(row["error"])


def keys_by_shard(jobs: Sequence[JobStatus], ledger: Ledger | None, store: LedgerStore, backend: BatchBackend,
                  run_input: RunInput, limits: ShardLimits) -> Iterable[tuple[str, int]]:
    """``(key, shard)`` per input row: from the ledger's keys file when it kept one for these jobs,
    each job checked to be the one its shard created (``LedgerStore.recorded_job``); else worked
    out from the input (jobs submitted elsewhere, or by an older release) and the per-job ``limits``.

    :raises LedgerError: a job is not its shard's, or the keys file does not match the ledger (as
        the keys are read)."""
    if ledger is not None and ledger.keys_file and ledger.job_names == [job.name for job in jobs]:
        for record in ledger.shards:
            if record.status != WAITING:  # a shard still waiting at the deadline never got a job
                store.recorded_job(record, backend)
        return store.keys(ledger)
    if len(jobs) == 1:
        return ((key, 0) for key in iter_keys(run_input.records(), run_input.spec))
    return shard_of_keys(run_input.requests(), limits)


def land(jobs: Sequence[JobStatus], keys: Iterable[tuple[str, int]], backend: BatchBackend, writer: ResultsWriter,
         rerun: Rerun = Rerun(), log: logging.Logger | None = None, scratch: Path | None = None,
         never_created: frozenset[int] = frozenset()) -> set[str]:
    """Write one row per key of ``keys`` (``(key, shard_index)``) from the jobs' output files; the
    keys to run online. The jobs are the shards' in shard order, but for the ``never_created``
    shards (indexes), which waited for room in the batch quota until the deadline: their rows land
    ``cancelled``. The output files are downloaded into a folder under ``scratch`` (the system's
    temporary folder when None) and removed once read."""
    log = log or logging.getLogger(__name__)
    with tempfile.TemporaryDirectory(prefix="gemini-output-", dir=scratch) as tmp:
        outputs = []
        for index, job in enumerate(jobs):
            if job.output_file:
                outputs.append(Path(tmp) / f"output-{index:05d}.jsonl")
                backend.download(job.output_file, outputs[-1])
        created = iter(jobs)
        by_shard = [None if index in never_created else next(created, None)
                    for index in range(len(jobs) + len(never_created))]
        skipped, again = join_results(keys, _lines(outputs), writer, rerun, _why_missing(by_shard))
    if any(skipped.values()):
        log.warning("Output lines skipped: %s", skipped)
    return again


def _lines(paths: Sequence[Path]) -> Iterator[bytes]:
    for path in paths:
        with path.open("rb") as lines:
            yield from lines


def _why_missing(jobs: Sequence[JobStatus | None]) -> Callable[[str, int], tuple[str, str]]:
    """The status and message of a key that its job's output does not mention (``jobs`` by shard,
    None for a shard whose job was never created)."""

    def why(key: str, shard: int) -> tuple[str, str]:
        if shard >= len(jobs):
            return RowStatus.MISSING, (f"this row belongs to shard {shard + 1} but only {len(jobs)} jobs were given; "
                                       "give the results task the same per-job limits as the submit task")
        job = jobs[shard]
        if job is None:
            return RowStatus.CANCELLED, (f"shard {shard + 1} waited for room in the project's batch quota and was "
                                         "never created: the deadline passed first")
        if job.state in ANSWERED:
            return RowStatus.MISSING, f"the output of {job.name} has no readable line for this key"
        status = NO_RESULT.get(job.state, RowStatus.MISSING)
        return status, f"{job.name} ended {job.state} before answering this row"

    return why


def endings_error(jobs: Sequence[JobStatus], summary: dict[str, Any]) -> JobEndedBadly | None:
    """The error to fail with after landing, when a job ended FAILED, CANCELLED or EXPIRED, or when
    rows of jobs that succeeded have no readable answer (an output file cut short or damaged),
    naming the jobs and where what they produced landed; None when all is well."""
    bad = [f"{job.name} {job.state}" for job in jobs if job.state in ENDED_BADLY]
    if bad:
        return JobEndedBadly(f"batch jobs did not succeed: {', '.join(bad)}; what they produced landed in "
                             f"{summary['output_path']} (counts {summary['counts']})")
    if cancelled := summary["counts"][RowStatus.CANCELLED]:
        return JobEndedBadly(f"{cancelled} rows were never sent: their shards waited for room in the batch quota "
                             f"until the deadline; they landed as 'cancelled' in {summary['output_path']}. Set "
                             "on_deadline='online' to finish such rows online, or a later deadline")
    if missing := summary["counts"][RowStatus.MISSING]:
        return JobEndedBadly(
            f"{missing} rows have no readable answer in the output of jobs that succeeded (the file was cut "
            f"short or damaged); they landed as 'missing' in {summary['output_path']}. Set rerun_failed_online=True "
            "to run such rows online")
    return None
