"""GeminiBatchOperator: records or a file in, one Gemini batch job, a results JSONL file out."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowException

from gemini_batch_provider.core.jsonl import write_batch_input
from gemini_batch_provider.core.online import OnlineSettings
from gemini_batch_provider.core.records import InputError
from gemini_batch_provider.core.results import FAILED, MISSING, join_results
from gemini_batch_provider.core.states import SUCCEEDED, TERMINAL, job_summary
from gemini_batch_provider.core.transient import RETRYABLE_CODES
from gemini_batch_provider.hooks.gemini import GeminiHook
from gemini_batch_provider.operators.base import GeminiRequestsOperator
from gemini_batch_provider.triggers.batch import GeminiBatchJobTrigger, deadline_event, finish_event

INPUT_FILES_XCOM = "gemini_batch_input_files"


class GeminiBatchOperator(GeminiRequestsOperator):
    """Run a set of records as one Gemini Batch API job (or online, when routed so) and land one
    result row per record.

    Builds one ``GenerateContentRequest`` per record from ``prompt_template``, checks every row
    (before anything is uploaded), writes the batch input JSONL, uploads it through the Files API,
    creates the batch job, waits for it (in the triggerer when ``deferrable``, else polling in the
    worker), then downloads the output file and writes ``output_path``. Takes the parameters of
    :class:`~gemini_batch_provider.operators.base.GeminiRequestsOperator` and:

    :param mode: ``batch`` (default); ``online`` (every row through the online engine, at the
        interactive price); ``auto`` (online when there are at most ``online_threshold`` rows).
    :param online_threshold: rows at or below which ``auto`` goes online.
    :param deadline: seconds after submission (or a timedelta) after which an unfinished batch is
        cancelled and its rows without a result finish online. None: wait for the job.
    :param rerun_failed_online: run again online the rows the batch answered with a retryable
        error (HTTP 408/429/5xx).
    :param online_concurrency: calls in flight at most on the online path.
    :param online_rpm: requests per minute at most on the online path (None: no client-side limit).
    :param online_tpm: tokens per minute at most on the online path (None: no client-side limit).
    :param deferrable: wait in the triggerer (default) instead of holding a worker slot.
    :param poll_interval: seconds between status polls.
    :param delete_input_file: delete the uploaded input file once the results have landed.
    :return: (XCom) summary: ``rows``, ``counts`` by status, ``usage`` token totals, ``path``
        (``batch``, ``online`` or ``batch+online``), ``rows_by_path``, ``batch_jobs``,
        ``output_path``, ``model``. Never the rows themselves. Each row lands exactly once.
    :raises AirflowFailException: bad input (no retry helps), naming the row and the fix.
    :raises AirflowException: the job ended FAILED, CANCELLED or EXPIRED, or polling failed.
    """

    MODES = ("batch", "online", "auto")

    def __init__(
        self,
        *,
        mode: str = "batch",
        online_threshold: int = 100,
        deadline: float | timedelta | None = None,
        rerun_failed_online: bool = False,
        online_concurrency: int = 32,
        online_rpm: int | None = None,
        online_tpm: int | None = None,
        deferrable: bool = True,
        poll_interval: float = 30.0,
        delete_input_file: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"{self.task_id}: mode must be one of {self.MODES}, got {mode!r}")
        if poll_interval <= 0:
            raise ValueError(f"{self.task_id}: poll_interval must be positive seconds, got {poll_interval}")
        seconds = deadline.total_seconds() if isinstance(deadline, timedelta) else deadline
        if seconds is not None and seconds <= 0:
            raise ValueError(f"{self.task_id}: deadline must be positive seconds, got {deadline}")
        if online_threshold < 0:
            raise ValueError(f"{self.task_id}: online_threshold must not be negative, got {online_threshold}")
        self.mode = mode
        self.online_threshold = online_threshold
        self.deadline = seconds
        self.rerun_failed_online = rerun_failed_online
        self.online_settings = OnlineSettings(concurrency=online_concurrency, rpm=online_rpm, tpm=online_tpm)
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.delete_input_file = delete_input_file

    def _display_name(self, context: Context) -> str:
        """Run-stable job name: the same for every try of this task instance."""
        ti = context["ti"]
        return f"airflow:{ti.dag_id}:{ti.task_id}:{ti.run_id}:{ti.map_index}"

    def execute(self, context: Context) -> dict[str, Any]:
        if self.mode != "batch":
            rows = self.checked_row_count()
            if self.mode == "online" or rows <= self.online_threshold:
                self.log.info("%d rows, mode %s: running online.", rows, self.mode)
                return self.land_online(rows, self.online_settings)
        hook = GeminiHook(self.gemini_conn_id)
        with tempfile.TemporaryDirectory(prefix="gemini-batch-") as tmp:
            try:
                batch_input = write_batch_input(self.requests(), Path(tmp) / "requests.jsonl")
            except InputError as exc:
                raise self.bad_input(exc) from None
            if batch_input.requests == 0:
                self.log.warning("The input has no records: no batch job is created.")
                return self._land([], [], [], rerun=None)
            self.log.info("Built %d requests (%d bytes); uploading.", batch_input.requests, batch_input.size_bytes)
            display_name = self._display_name(context)
            uploaded = hook.upload_file(batch_input.path, display_name=display_name)
        job = hook.create_batch_job(self.model, src=str(uploaded.name), display_name=display_name)
        self.log.info("Created batch job %s from %s (%d requests).", job.name, uploaded.name, batch_input.requests)
        job_names = [str(job.name)]
        deadline = time.time() + self.deadline if self.deadline is not None else None
        # Kept in XCom, not in the trigger: the job resource does not name its input file.
        context["ti"].xcom_push(key=INPUT_FILES_XCOM, value=[uploaded.name])
        if self.deferrable:
            self.defer(
                trigger=GeminiBatchJobTrigger(
                    job_names=job_names, gemini_conn_id=self.gemini_conn_id, poll_interval=self.poll_interval,
                    deadline=deadline,
                ),
                method_name="execute_complete",
            )
        return self.execute_complete(context, self._wait(hook, job_names, deadline))

    @staticmethod
    def _poll(hook: GeminiHook, job_names: list[str]) -> list[dict[str, Any]]:
        return [job_summary(hook.get_batch_job(name)) for name in job_names]

    def _wait(self, hook: GeminiHook, job_names: list[str], deadline: float | None) -> dict[str, Any]:
        """Poll in the worker (``deferrable=False``); returns an event shaped like the trigger's."""
        while True:
            jobs = self._poll(hook, job_names)
            if all(job["state"] in TERMINAL for job in jobs):
                return finish_event(jobs)
            if deadline is not None and time.time() >= deadline:
                return deadline_event(jobs)
            self.log.info("Batch jobs: %s; next poll in %.0f s", jobs, self.poll_interval)
            time.sleep(self.poll_interval)

    def _cancel_unfinished(self, hook: GeminiHook, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Cancel the jobs still running at the deadline and wait (briefly) until they have ended."""
        for job in jobs:
            if job["state"] not in TERMINAL:
                self.log.warning("Deadline passed: cancelling %s (%s).", job["name"], job["state"])
                hook.cancel_batch_job(job["name"])
        for _ in range(60):
            jobs = self._poll(hook, [job["name"] for job in jobs])
            if all(job["state"] in TERMINAL for job in jobs):
                break
            time.sleep(1)
        return jobs

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the wait: fail on a bad ending, else download, join by key and land the results;
        after a deadline, unfinished jobs are cancelled and their rows finish online."""
        if event["status"] == "error":
            raise AirflowException(f"{self.task_id}: {event['message']}")
        hook = GeminiHook(self.gemini_conn_id)
        jobs = event["jobs"]
        past_deadline = event["status"] == "deadline"
        if past_deadline:
            jobs = self._cancel_unfinished(hook, jobs)
        output_lines: list[bytes] = []
        for job in jobs:
            if job["state"] == SUCCEEDED and job["output_file"]:
                output_lines.extend(hook.download_file(job["output_file"]).splitlines())

        def rerun(row: dict[str, Any]) -> bool:
            if row["status"] == MISSING:
                return past_deadline
            error = row["error"] or {}
            return self.rerun_failed_online and row["status"] == FAILED and error.get("code") in RETRYABLE_CODES

        keys = [key for key, _ in self.requests()]
        summary = self._land(keys, output_lines, [j["name"] for j in jobs], rerun=rerun)
        if self.delete_input_file:
            for name in context["ti"].xcom_pull(task_ids=self.task_id, key=INPUT_FILES_XCOM) or []:
                hook.delete_file(name)
        return summary

    def _land(self, keys: list[str], output_lines: list[bytes], job_names: list[str],
              rerun: Callable[[dict[str, Any]], bool] | None) -> dict[str, Any]:
        writer = self.results_writer()
        try:
            skipped, again = join_results(keys, output_lines, writer, rerun)
            if again:
                self.log.info("%d rows go online: %s", len(again), "deadline passed or retryable errors")
                self.run_online(writer, ((k, r) for k, r in self.requests() if k in again), len(again),
                                self.online_settings)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        if any(skipped.values()):
            self.log.warning("Output lines skipped: %s", skipped)
        return self.summary(writer, len(keys), "batch+online" if again else "batch", job_names)
