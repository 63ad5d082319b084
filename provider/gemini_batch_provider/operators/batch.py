"""GeminiBatchOperator: records or a file in, Gemini batch jobs (or the online engine), a results file out."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Context

from gemini_batch_provider.core import waiting
from gemini_batch_provider.core.errors import PollingFailed
from gemini_batch_provider.core.ledger import Ledger
from gemini_batch_provider.core.online import OnlineSettings
from gemini_batch_provider.core.vocabulary import WaitStatus, validate_event
from gemini_batch_provider.hooks.gemini import GeminiHook
from gemini_batch_provider.operators.base import run_identity
from gemini_batch_provider.operators.results import delete_media_files, fail_on_bad_endings, land_batch
from gemini_batch_provider.operators.submit import GeminiSubmitBatchOperator
from gemini_batch_provider.triggers.batch import GeminiBatchJobTrigger

MAX_POLL_INTERVAL = 86_400.0
CANCEL_SETTLE_SECONDS = 60.0  # how long a deadline's cancel may take to show before landing
JOB_LIFETIME = 48 * 3600.0  # a job not done by then expires (https://ai.google.dev/gemini-api/docs/batch-mode)


class GeminiBatchOperator(GeminiSubmitBatchOperator):
    """Run a set of records through the Gemini Batch API (or online, when routed so) and land one
    result row per record: submit, wait, land, in one task.

    Submits as :class:`~gemini_batch_provider.operators.submit.GeminiSubmitBatchOperator` does (every
    row checked first; the input split over jobs; each job created once per task instance, whatever
    the retries), waits for every job (in the triggerer when ``deferrable``, else polling in the
    worker), then lands as :class:`~gemini_batch_provider.operators.results.GeminiBatchResultsOperator`
    does. Takes the parameters of both and:

    :param mode: ``batch`` (default); ``online`` (every row through the online engine, at the
        interactive price); ``auto`` (online when there are at most ``online_threshold`` rows).
    :param online_threshold: rows at or below which ``auto`` goes online.
    :param deadline: seconds (or a timedelta) after the first job was created, across retries,
        after which unfinished jobs are cancelled. None: wait for the jobs.
    :param on_deadline: ``online`` (default): the rows the cancelled jobs did not answer finish
        online; ``cancel``: they land ``cancelled`` and the task fails.
    :param rerun_failed_online: run again online the rows the batch answered with a retryable
        error (HTTP 408/429/5xx) or gave no readable answer (``missing``).
    :param online_concurrency: calls in flight at most on the online path.
    :param online_rpm: requests per minute at most on the online path (None: no client-side limit).
    :param online_tpm: tokens per minute at most on the online path (None: no client-side limit).
    :param deferrable: wait in the triggerer (default) instead of holding a worker slot.
    :param poll_interval: seconds before the second status poll; polls back off by half each time.
    :param max_poll_interval: longest wait between polls, seconds.
    :param delete_input_files: delete the uploaded input files once the results have landed.
    :return: (XCom) summary: ``rows``, ``counts`` by status, ``usage`` token totals, ``path``
        (``batch``, ``online`` or ``batch+online``), ``rows_by_path``, ``batch_jobs``,
        ``output_path``, ``model``, ``estimated_cost_usd``, ``cost_usd`` (US dollars; None for a
        model without a known price). Never the rows themselves. Each row lands exactly once.
    :raises AirflowFailException: bad input (no retry helps), naming the row and the fix, or an
        estimated cost over ``max_cost_usd``; nothing was uploaded or billed.
    :raises AirflowException: a job ended FAILED, CANCELLED or EXPIRED (after what it produced
        landed), or polling failed.
    """

    MODES = ("batch", "online", "auto")
    ON_DEADLINE = ("online", "cancel")

    def __init__(
        self,
        *,
        mode: str = "batch",
        online_threshold: int = 100,
        deadline: float | timedelta | None = None,
        on_deadline: str = "online",
        rerun_failed_online: bool = False,
        online_concurrency: int = 32,
        online_rpm: int | None = None,
        online_tpm: int | None = None,
        deferrable: bool = True,
        poll_interval: float = 30.0,
        max_poll_interval: float = 300.0,
        delete_input_files: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"{self.task_id}: mode must be one of {self.MODES}, got {mode!r}")
        if on_deadline not in self.ON_DEADLINE:
            raise ValueError(f"{self.task_id}: on_deadline must be one of {self.ON_DEADLINE}, got {on_deadline!r}")
        if not 0 < poll_interval <= max_poll_interval <= MAX_POLL_INTERVAL:
            raise ValueError(f"{self.task_id}: poll_interval and max_poll_interval must be seconds with "
                             f"0 < poll_interval <= max_poll_interval <= {MAX_POLL_INTERVAL} (a day), got "
                             f"{poll_interval} and {max_poll_interval}")
        seconds = deadline.total_seconds() if isinstance(deadline, timedelta) else deadline
        if seconds is not None and not 0 < seconds <= JOB_LIFETIME:
            raise ValueError(f"{self.task_id}: deadline must be positive seconds and at most {JOB_LIFETIME} (48 h, "
                             f"after which a batch job expires by itself), got {deadline}")
        if online_threshold < 0:
            raise ValueError(f"{self.task_id}: online_threshold must not be negative, got {online_threshold}")
        self.mode = mode
        self.online_threshold = online_threshold
        self.deadline = seconds
        self.on_deadline = on_deadline
        self.rerun_failed_online = rerun_failed_online
        self.online_settings = OnlineSettings(concurrency=online_concurrency, rpm=online_rpm, tpm=online_tpm)
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.delete_input_files = delete_input_files

    def execute(self, context: Context) -> dict[str, Any]:
        if self.mode != "batch":
            found = self.checked_estimate()
            if self.mode == "online" or found.requests <= self.online_threshold:
                self.log.info("%d rows, mode %s: running online.", found.requests, self.mode)
                self.check_budget(found, batch=False)
                return self.land_online(found.requests, self.online_settings, run_identity(context))
        ledger = self.submit(context)
        if ledger is None:
            return self._land(self.hook, [], past_deadline=False)
        deadline = self._deadline_at(ledger)
        if self.deferrable:
            self.defer(
                trigger=GeminiBatchJobTrigger(
                    job_names=ledger.job_names, gemini_conn_id=self.gemini_conn_id, poll_interval=self.poll_interval,
                    max_poll_interval=self.max_poll_interval, deadline=deadline, cancel_on_kill=True,
                ),
                method_name="execute_complete",
            )
        return self.execute_complete(context, self._wait(self.hook, ledger.job_names, deadline))

    def _deadline_at(self, ledger: Ledger) -> float | None:
        """The deadline as Unix time, anchored at the first create: it survives retries and restarts."""
        if self.deadline is None or ledger.first_submitted_at is None:
            return None
        return ledger.first_submitted_at + self.deadline

    def _wait(self, hook: GeminiHook, job_names: list[str], deadline: float | None) -> dict[str, Any]:
        """Poll in the worker (``deferrable=False``) with the trigger's engine; returns its event."""
        policy = waiting.WaitPolicy(self.poll_interval, self.max_poll_interval, deadline=deadline)
        poll = waiting.in_thread(hook.get_job_status)
        return asyncio.run(waiting.wait_logged(job_names, poll, policy, self.log)).payload()

    def _cancel_unfinished(self, hook: GeminiHook, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Cancel the jobs still running at the deadline and wait (a minute at most) until they have ended."""

        def cancel(name: str) -> None:
            self.log.warning("Deadline passed: cancelling %s.", name)
            hook.cancel_batch_job(name)

        names = [job["name"] for job in jobs]
        poll = waiting.in_thread(hook.get_job_status)
        statuses = asyncio.run(waiting.cancel_unfinished(names, poll, waiting.in_thread(cancel), CANCEL_SETTLE_SECONDS))
        return [status.summary() for status in statuses]

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the wait: download, join by key and land the results, whatever the jobs'
        endings; past the deadline, unfinished jobs are cancelled first."""
        ended = validate_event(event)
        if ended.status is WaitStatus.ERROR:
            raise PollingFailed(f"{self.task_id}: {ended.message}")
        hook = self.hook
        jobs = ended.jobs
        past_deadline = ended.past_deadline
        if past_deadline:
            jobs = self._cancel_unfinished(hook, jobs)
        summary = self._land(hook, jobs, past_deadline)
        if not (past_deadline and self.on_deadline == "online"):
            fail_on_bad_endings(self, jobs, summary)
        delete_media_files(self, hook)
        return summary

    def _land(self, hook: GeminiHook, jobs: list[dict[str, Any]], past_deadline: bool) -> dict[str, Any]:
        return land_batch(self, hook, jobs, rerun_failed_online=self.rerun_failed_online,
                          online_after_deadline=past_deadline and self.on_deadline == "online",
                          online_settings=self.online_settings, delete_input_files=self.delete_input_files)

