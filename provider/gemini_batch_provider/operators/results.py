"""GeminiBatchResultsOperator: download what batch jobs produced, join it to the input, land it."""

from __future__ import annotations

import bisect
import itertools
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, Context

from gemini_batch_provider.core.errors import JobEndedBadly
from gemini_batch_provider.core.ledger import Ledger
from gemini_batch_provider.core.online import OnlineSettings
from gemini_batch_provider.core.results import join_results
from gemini_batch_provider.core.shards import shard_of_keys
from gemini_batch_provider.core.transient import RETRYABLE_CODES
from gemini_batch_provider.core.vocabulary import ANSWERED, ENDED_BADLY, TERMINAL, JobState, RowPath, RowStatus
from gemini_batch_provider.hooks.gemini import GeminiHook
from gemini_batch_provider.operators.base import GeminiBatchRequestsOperator

NO_RESULT = {  # the status of a row its job gave no answer for, by the job's ending (else missing)
    JobState.EXPIRED: RowStatus.EXPIRED,
    JobState.CANCELLED: RowStatus.CANCELLED,
}


def _lines(paths: Sequence[Path]) -> Iterator[bytes]:
    for path in paths:
        with path.open("rb") as lines:
            yield from lines


def land_batch(op: GeminiBatchRequestsOperator, hook: GeminiHook, jobs: list[dict[str, Any]], *,
               rerun_failed_online: bool, online_after_deadline: bool, online_settings: OnlineSettings,
               delete_input_files: bool) -> dict[str, Any]:
    """Download each job's output, join it by key to ``op``'s input and write one row per record;
    rows answered with a retryable error go online when ``rerun_failed_online``, and rows without
    an answer when ``online_after_deadline`` (jobs cut short by our deadline). Returns the summary."""
    writer = op.results_writer()
    ledger = op.load_ledger()
    again: set[str] = set()
    try:
        with tempfile.TemporaryDirectory(prefix="gemini-results-") as tmp:
            outputs = []
            for index, job in enumerate(jobs):
                if job["output_file"]:
                    outputs.append(Path(tmp) / f"output-{index:05d}.jsonl")
                    hook.download_api_file(job["output_file"], outputs[-1])
            rerun = _rerun(rerun_failed_online, online_after_deadline)
            skipped, again = join_results(_keys_by_shard(op, jobs, ledger), _lines(outputs), writer, rerun,
                                          _why_missing(jobs))
        if any(skipped.values()):
            op.log.warning("Output lines skipped: %s", skipped)
        if again:
            op.log.info("%d rows go online (deadline passed, or retryable errors).", len(again))
            # A resumed task builds its media parts again (and finds what it uploaded before).
            uploaded = op.stage_media(hook, ledger.identity if ledger else "", getattr(op, "gcs_staging_uri", None))
            if ledger is not None and ledger.add_media(uploaded):
                op.save_ledger(ledger)
            op.run_online(writer, ((k, r) for k, r in op.requests() if k in again), len(again), online_settings)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    op.drop_media(hook, [])  # the local downloads; uploaded media go once the task succeeds (delete_media_files)
    if ledger is not None:
        if op.estimated_cost_usd is None:  # a task resumed after deferral: the estimate of its submit
            op.estimated_cost_usd = ledger.estimated_cost_usd
        if delete_input_files:
            _delete_input_files(op, hook, ledger)
    return op.summary(writer, sum(writer.counts.values()), RowPath.BATCH_AND_ONLINE if again else RowPath.BATCH,
                      [job["name"] for job in jobs])


def _keys_by_shard(op: GeminiBatchRequestsOperator, jobs: list[dict[str, Any]],
                   ledger: Ledger | None) -> Iterator[tuple[str, int]]:
    """``(key, shard)`` per input row. Shards hold consecutive rows, so the ledger's request counts
    give each key's shard; without a ledger of these jobs, the shards are worked out again."""
    if len(jobs) == 1:
        return ((key, 0) for key in op.keys())
    if ledger is None or ledger.job_names != [job["name"] for job in jobs]:
        return shard_of_keys(op.requests(), op.shard_limits)
    ends = list(itertools.accumulate(shard.requests for shard in ledger.shards))
    return ((key, bisect.bisect_right(ends, row)) for row, key in enumerate(op.keys()))


def _rerun(failed: bool, unanswered: bool) -> Callable[[dict[str, Any]], bool]:
    def rerun(row: dict[str, Any]) -> bool:
        if row["status"] == RowStatus.MISSING:  # no answer at all, whatever the job's ending: lost, not refused
            return unanswered or failed
        if row["status"] in (RowStatus.EXPIRED, RowStatus.CANCELLED):
            return unanswered
        return failed and row["status"] == RowStatus.FAILED and (row["error"] or {}).get("code") in RETRYABLE_CODES

    return rerun


def _why_missing(jobs: list[dict[str, Any]]) -> Callable[[str, int], tuple[str, str]]:
    """The status and message of a key that its job's output does not mention."""

    def why(key: str, shard: int) -> tuple[str, str]:
        if shard >= len(jobs):
            return RowStatus.MISSING, (f"this row belongs to shard {shard + 1} but only {len(jobs)} jobs were given; "
                                       "give the results task the same per-job limits as the submit task")
        job = jobs[shard]
        if job["state"] in ANSWERED:
            return RowStatus.MISSING, f"the output of {job['name']} has no readable line for this key"
        status = NO_RESULT.get(job["state"], RowStatus.MISSING)
        return status, f"{job['name']} ended {job['state']} before answering this row"

    return why


def _delete_input_files(op: GeminiBatchRequestsOperator, hook: GeminiHook, ledger: Ledger) -> None:
    for shard in ledger.shards:
        if shard.input_file:
            hook.delete_api_file(shard.input_file)
            shard.input_file = None
    op.save_ledger(ledger)


def delete_media_files(op: GeminiBatchRequestsOperator, hook: GeminiHook) -> None:
    """Once the task has succeeded: delete the media uploaded for its requests (unless
    ``keep_media_files``). A failing task keeps them, so that a retry finds them and its requests,
    hence the ledger's fingerprint, stay the same."""
    ledger = op.load_ledger()
    if ledger is None or not ledger.media_files or op.keep_media_files:
        return
    op.drop_media(hook, ledger.media_files)
    ledger.media_files = []
    op.save_ledger(ledger)


def fail_on_bad_endings(op: GeminiBatchRequestsOperator, jobs: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Fail the task (after landing) when a job ended FAILED, CANCELLED or EXPIRED, or when rows of
    jobs that succeeded have no readable answer (an output file cut short or damaged)."""
    bad = [f"{job['name']} {job['state']}" for job in jobs if job["state"] in ENDED_BADLY]
    if bad:
        raise JobEndedBadly(f"{op.task_id}: batch jobs did not succeed: {', '.join(bad)}; what they produced "
                               f"landed in {summary['output_path']} (counts {summary['counts']})")
    if missing := summary["counts"][RowStatus.MISSING]:
        raise JobEndedBadly(
            f"{op.task_id}: {missing} rows have no readable answer in the output of jobs that succeeded "
            f"(the file was cut short or damaged); they landed as 'missing' in {summary['output_path']}. "
            "Set rerun_failed_online=True to run such rows online")


class GeminiBatchResultsOperator(GeminiBatchRequestsOperator):
    """Land the results of ended batch jobs: one row per input record in ``output_path``.

    Give it the same input, request and per-job parameters as the
    :class:`~gemini_batch_provider.operators.submit.GeminiSubmitBatchOperator` that created the jobs
    (so each key's job is known), and the job names it returned, in order. Each job's output file
    is streamed to disk and joined by key; whatever a FAILED, CANCELLED or EXPIRED job produced
    lands too, and rows with no answer get ``missing``, ``cancelled`` or ``expired``. Uploaded
    input files named in the ledger are deleted afterwards unless ``delete_input_files`` is False.

    :param job_names: batch job names, ``batches/<id>``, in shard order (templated; e.g. the
        submit task's XCom).
    :param rerun_failed_online: run again online the rows answered with a retryable error
        (HTTP 408/429/5xx) or with no readable answer (``missing``), with ``online_concurrency``,
        ``online_rpm`` and ``online_tpm``.
    :param delete_input_files: delete the uploaded input files once the results have landed.
    :return: (XCom) the summary (see GeminiRequestsOperator.summary).
    :raises AirflowException: a job has not ended yet, or ended FAILED, CANCELLED or EXPIRED, or
        rows of jobs that succeeded have no readable answer (raised after the results have landed).
    """

    template_fields: Sequence[str] = (*GeminiBatchRequestsOperator.template_fields, "job_names")

    def __init__(self, *, job_names: list[str] | str, rerun_failed_online: bool = False, online_concurrency: int = 32,
                 online_rpm: int | None = None, online_tpm: int | None = None, delete_input_files: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_names = job_names
        self.rerun_failed_online = rerun_failed_online
        self.online_settings = OnlineSettings(concurrency=online_concurrency, rpm=online_rpm, tpm=online_tpm)
        self.delete_input_files = delete_input_files

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        jobs = hook.job_summaries(self.job_names)
        unfinished = [job["name"] for job in jobs if job["state"] not in TERMINAL]
        if unfinished:
            raise AirflowException(f"{self.task_id}: batch jobs not ended yet: {unfinished}; wait with "
                                   "GeminiBatchJobSensor first")
        summary = land_batch(self, hook, jobs, rerun_failed_online=self.rerun_failed_online,
                             online_after_deadline=False, online_settings=self.online_settings,
                             delete_input_files=self.delete_input_files)
        fail_on_bad_endings(self, jobs, summary)
        delete_media_files(self, hook)
        return summary
