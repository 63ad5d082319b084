"""GeminiBatchOperator: records or a file in, Gemini batch jobs (or the online engine), a results file out."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Context, conf

from gemini_batch_provider.core import waiting
from gemini_batch_provider.core.errors import InputError, PollingFailed
from gemini_batch_provider.core.land import Rerun, check_endings
from gemini_batch_provider.core.ledger import Ledger
from gemini_batch_provider.core.online import OnlineSettings
from gemini_batch_provider.core.plan import Routing
from gemini_batch_provider.core.vocabulary import WaitStatus, validate_event
from gemini_batch_provider.operators.batch_run import delete_media_files, land_batch
from gemini_batch_provider.operators.run import TaskRun, refusing
from gemini_batch_provider.operators.submit import GeminiSubmitBatchOperator
from gemini_batch_provider.triggers.batch import GeminiBatchJobTrigger

CANCEL_SETTLE_SECONDS = 60.0  # how long a deadline's cancel may take to show before landing


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
    :param deferrable: wait in the triggerer instead of holding a worker slot; default: Airflow's
        ``[operators] default_deferrable``, as the official providers do.
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

    lands_results = True

    def __init__(self, *, mode: str = "batch", online_threshold: int = 100, deadline: float | timedelta | None = None,
                 on_deadline: str = "online", rerun_failed_online: bool = False, online_concurrency: int = 32,
                 online_rpm: int | None = None, online_tpm: int | None = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 poll_interval: float = 30.0, max_poll_interval: float = 300.0, delete_input_files: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            seconds = deadline.total_seconds() if isinstance(deadline, timedelta) else deadline
            self.routing = Routing(mode, online_threshold, seconds, on_deadline, rerun_failed_online)
            waiting.WaitPolicy(poll_interval, max_poll_interval)  # checked now, built with the deadline later
        except (InputError, ValueError) as exc:
            raise InputError(f"{self.task_id}: {exc}") from None
        self.online_settings = OnlineSettings(concurrency=online_concurrency, rpm=online_rpm, tpm=online_tpm)
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.delete_input_files = delete_input_files

    def execute(self, context: Context) -> dict[str, Any]:
        with refusing(self.task_id):
            run = self.task_run(context)
        with run:  # its downloads go when the try ends, deferred or not
            with refusing(self.task_id):
                if self.routing.mode != "batch":
                    found = run.checked_estimate()
                    if self.routing.online(found.requests):
                        self.log.info("%d rows, mode %s: running online.", found.requests, self.routing.mode)
                        run.check_budget(found, batch=False)
                        return self.landed_summary(run.land_online(found.requests, self.online_settings))
                ledger = self.submit(context, run)
            if ledger is None:
                return self._land(run, [], past_deadline=False)
            deadline = self._deadline_at(ledger)
            if self.deferrable:
                self.defer(
                    trigger=GeminiBatchJobTrigger(
                        job_names=ledger.job_names, gemini_conn_id=self.gemini_conn_id,
                        poll_interval=self.poll_interval, max_poll_interval=self.max_poll_interval, deadline=deadline,
                        cancel_on_kill=True,
                    ),
                    method_name="execute_complete",
                )
            policy = waiting.WaitPolicy(self.poll_interval, self.max_poll_interval, deadline=deadline)
            poll = waiting.in_thread(self.hook.get_job_status)
            event = asyncio.run(waiting.wait_logged(ledger.job_names, poll, policy, self.log))
            return self.execute_complete(context, event.payload())

    def _deadline_at(self, ledger: Ledger) -> float | None:
        """The deadline as Unix time, anchored at the first create: it survives retries and restarts."""
        if self.routing.deadline_s is None or ledger.first_submitted_at is None:
            return None
        return ledger.first_submitted_at + self.routing.deadline_s

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the wait: download, join by key and land the results, whatever the jobs'
        endings; past the deadline, unfinished jobs are cancelled first."""
        ended = validate_event(event)
        if ended.status is WaitStatus.ERROR:
            raise PollingFailed(f"{self.task_id}: {ended.message}")
        with self.task_run(context) as run:
            jobs = self._cancel_unfinished(ended.jobs) if ended.past_deadline else ended.jobs
            summary = self._land(run, jobs, ended.past_deadline)
            if not (ended.past_deadline and self.routing.online_after_deadline):
                check_endings(jobs, summary)
            delete_media_files(run)
        return summary

    def _cancel_unfinished(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Cancel the jobs still running at the deadline and wait (a minute at most) until they have ended."""
        hook = self.hook

        def cancel(name: str) -> None:
            self.log.warning("Deadline passed: cancelling %s.", name)
            hook.cancel_batch_job(name)

        names = [job["name"] for job in jobs]
        poll = waiting.in_thread(hook.get_job_status)
        statuses = asyncio.run(waiting.cancel_unfinished(names, poll, waiting.in_thread(cancel), CANCEL_SETTLE_SECONDS))
        return [status.summary() for status in statuses]

    def _land(self, run: TaskRun, jobs: list[dict[str, Any]], past_deadline: bool) -> dict[str, Any]:
        rerun = Rerun(failed=self.routing.rerun_failed_online,
                      unanswered=past_deadline and self.routing.online_after_deadline)
        summary = land_batch(run, jobs, rerun, self.online_settings, self.delete_input_files, self.gcs_staging_uri)
        return self.landed_summary(summary)
