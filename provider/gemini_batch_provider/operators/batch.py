"""GeminiBatchOperator: records or a file in, one Gemini batch job, a results JSONL file out."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowException

from gemini_batch_provider.core.jsonl import write_batch_input
from gemini_batch_provider.core.records import InputError
from gemini_batch_provider.core.results import join_results
from gemini_batch_provider.core.states import TERMINAL, job_summary, state_name
from gemini_batch_provider.hooks.gemini import GeminiHook
from gemini_batch_provider.operators.base import GeminiRequestsOperator
from gemini_batch_provider.triggers.batch import GeminiBatchJobTrigger, finish_event

INPUT_FILES_XCOM = "gemini_batch_input_files"


class GeminiBatchOperator(GeminiRequestsOperator):
    """Run one Gemini Batch API job over a set of records and land one result row per record.

    Builds one ``GenerateContentRequest`` per record from ``prompt_template``, checks every row
    (before anything is uploaded), writes the batch input JSONL, uploads it through the Files API,
    creates the batch job, waits for it (in the triggerer when ``deferrable``, else polling in the
    worker), then downloads the output file and writes ``output_path``. Takes the parameters of
    :class:`~gemini_batch_provider.operators.base.GeminiRequestsOperator` and:

    :param deferrable: wait in the triggerer (default) instead of holding a worker slot.
    :param poll_interval: seconds between status polls.
    :param delete_input_file: delete the uploaded input file once the results have landed.
    :return: (XCom) summary: ``rows``, ``counts`` by status, ``usage`` token totals, ``path``
        (``batch``), ``batch_jobs``, ``output_path``, ``model``. Never the rows themselves.
    :raises AirflowFailException: bad input (no retry helps), naming the row and the fix.
    :raises AirflowException: the job ended FAILED, CANCELLED or EXPIRED, or polling failed.
    """

    def __init__(self, *, deferrable: bool = True, poll_interval: float = 30.0, delete_input_file: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if poll_interval <= 0:
            raise ValueError(f"{self.task_id}: poll_interval must be positive seconds, got {poll_interval}")
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.delete_input_file = delete_input_file

    def _display_name(self, context: Context) -> str:
        """Run-stable job name: the same for every try of this task instance."""
        ti = context["ti"]
        return f"airflow:{ti.dag_id}:{ti.task_id}:{ti.run_id}:{ti.map_index}"

    def execute(self, context: Context) -> dict[str, Any]:
        hook = GeminiHook(self.gemini_conn_id)
        with tempfile.TemporaryDirectory(prefix="gemini-batch-") as tmp:
            try:
                batch_input = write_batch_input(self.requests(), Path(tmp) / "requests.jsonl")
            except InputError as exc:
                raise self.bad_input(exc) from None
            if batch_input.requests == 0:
                self.log.warning("The input has no records: no batch job is created.")
                return self._land([], [], [])
            self.log.info("Built %d requests (%d bytes); uploading.", batch_input.requests, batch_input.size_bytes)
            display_name = self._display_name(context)
            uploaded = hook.upload_file(batch_input.path, display_name=display_name)
        job = hook.create_batch_job(self.model, src=str(uploaded.name), display_name=display_name)
        self.log.info("Created batch job %s from %s (%d requests).", job.name, uploaded.name, batch_input.requests)
        job_names = [str(job.name)]
        # Kept in XCom, not in the trigger: the job resource does not name its input file.
        context["ti"].xcom_push(key=INPUT_FILES_XCOM, value=[uploaded.name])
        if self.deferrable:
            self.defer(
                trigger=GeminiBatchJobTrigger(
                    job_names=job_names, gemini_conn_id=self.gemini_conn_id, poll_interval=self.poll_interval
                ),
                method_name="execute_complete",
            )
        return self.execute_complete(context, self._wait(hook, job_names))

    def _wait(self, hook: GeminiHook, job_names: list[str]) -> dict[str, Any]:
        """Poll in the worker (``deferrable=False``); returns an event shaped like the trigger's."""
        jobs = []
        for name in job_names:
            while (state := state_name((job := hook.get_batch_job(name)).state)) not in TERMINAL:
                self.log.info("%s is %s; next poll in %.0f s", name, state, self.poll_interval)
                time.sleep(self.poll_interval)
            jobs.append(job_summary(job))
        return finish_event(jobs)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the wait: fail on a bad ending, else download, join by key and land the results."""
        if event["status"] != "success":
            raise AirflowException(f"{self.task_id}: {event['message']}")
        hook = GeminiHook(self.gemini_conn_id)
        output_lines: list[bytes] = []
        for job in event["jobs"]:
            output_lines.extend(hook.download_file(job["output_file"]).splitlines())
        summary = self._land([key for key, _ in self.requests()], output_lines, [j["name"] for j in event["jobs"]])
        if self.delete_input_file:
            for name in context["ti"].xcom_pull(task_ids=self.task_id, key=INPUT_FILES_XCOM) or []:
                hook.delete_file(name)
        return summary

    def _land(self, keys: list[str], output_lines: list[bytes], job_names: list[str]) -> dict[str, Any]:
        writer = self.results_writer()
        try:
            skipped = join_results(keys, output_lines, writer)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        if any(skipped.values()):
            self.log.warning("Output lines skipped: %s", skipped)
        return self.summary(writer, len(keys), "batch", job_names)
