"""GeminiBatchOperator: records or a file in, one Gemini batch job, a results JSONL file out."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from gemini_batch_provider.core.jsonl import write_batch_input
from gemini_batch_provider.core.records import InputError, iter_records
from gemini_batch_provider.core.requests import RequestSpec, build_requests
from gemini_batch_provider.core.results import STATUSES, ResultsWriter, join_results
from gemini_batch_provider.core.states import TERMINAL, job_summary, state_name
from gemini_batch_provider.hooks.gemini import GeminiHook
from gemini_batch_provider.triggers.batch import GeminiBatchJobTrigger, finish_event

INPUT_FILES_XCOM = "gemini_batch_input_files"


class GeminiBatchOperator(BaseOperator):
    """Run one Gemini Batch API job over a set of records and land one result row per record.

    Builds one ``GenerateContentRequest`` per record from ``prompt_template``, checks every row
    (before anything is uploaded), writes the batch input JSONL, uploads it through the Files API,
    creates the batch job, waits for it (in the triggerer when ``deferrable``, else polling in the
    worker), then downloads the output file and writes ``output_path``: JSONL with exactly one row per
    input record, ``{"key", "status", "text", "usage", "error"}`` (see ``core.results``).

    :param prompt_template: ``str.format`` template; each ``{field}`` names a record field.
    :param records: the input as a list of dicts (small sets; larger ones belong in ``input_path``).
    :param input_path: the input as a local ``.jsonl`` or ``.csv`` file (templated).
    :param output_path: local path of the results JSONL (templated); written atomically.
    :param model: Gemini model, e.g. ``gemini-2.5-flash`` (templated).
    :param key_field: record field holding each row's unique key; the 0-based row index when None.
    :param system_instruction: text sent as ``system_instruction`` with every request (templated).
    :param generation_config: fields of ``google.genai.types.GenerationConfig``.
    :param gemini_conn_id: connection of type ``gemini``.
    :param deferrable: wait in the triggerer (default) instead of holding a worker slot.
    :param poll_interval: seconds between status polls.
    :param delete_input_file: delete the uploaded input file once the results have landed.
    :return: (XCom) summary: ``rows``, ``counts`` by status, ``usage`` token totals, ``batch_jobs``,
        ``output_path``, ``model``. Never the rows themselves.
    :raises AirflowFailException: bad input (no retry helps), naming the row and the fix.
    :raises AirflowException: the job ended FAILED, CANCELLED or EXPIRED, or polling failed.
    """

    template_fields: Sequence[str] = ("input_path", "output_path", "model", "prompt_template", "system_instruction")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        prompt_template: str,
        output_path: str,
        records: Iterable[dict[str, Any]] | None = None,
        input_path: str | None = None,
        model: str = "gemini-2.5-flash",
        key_field: str | None = None,
        system_instruction: str | None = None,
        generation_config: dict[str, Any] | None = None,
        gemini_conn_id: str = GeminiHook.default_conn_name,
        deferrable: bool = True,
        poll_interval: float = 30.0,
        delete_input_file: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (records is None) == (input_path is None):
            raise ValueError(f"{self.task_id}: give exactly one of records= or input_path=")
        if poll_interval <= 0:
            raise ValueError(f"{self.task_id}: poll_interval must be positive seconds, got {poll_interval}")
        self.prompt_template = prompt_template
        self.output_path = output_path
        # A list, not any iterable: execute and execute_complete each read the records once.
        self.records = list(records) if records is not None else None
        self.input_path = input_path
        self.model = model
        self.key_field = key_field
        self.system_instruction = system_instruction
        self.generation_config = generation_config
        self.gemini_conn_id = gemini_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.delete_input_file = delete_input_file

    def _spec(self) -> RequestSpec:
        return RequestSpec(
            prompt_template=self.prompt_template,
            key_field=self.key_field,
            system_instruction=self.system_instruction,
            generation_config=self.generation_config,
        )

    def _requests(self) -> Iterable[tuple[str, dict[str, Any]]]:
        source = self.records if self.records is not None else self.input_path
        return build_requests(iter_records(source), self._spec())  # type: ignore[arg-type]

    def _display_name(self, context: Context) -> str:
        """Run-stable job name: the same for every try of this task instance."""
        ti = context["ti"]
        return f"airflow:{ti.dag_id}:{ti.task_id}:{ti.run_id}:{ti.map_index}"

    def execute(self, context: Context) -> dict[str, Any]:
        hook = GeminiHook(self.gemini_conn_id)
        with tempfile.TemporaryDirectory(prefix="gemini-batch-") as tmp:
            try:
                batch_input = write_batch_input(self._requests(), Path(tmp) / "requests.jsonl")
            except InputError as exc:
                raise AirflowFailException(f"{self.task_id}: bad input, nothing was uploaded: {exc}") from None
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
        summary = self._land([key for key, _ in self._requests()], output_lines, [j["name"] for j in event["jobs"]])
        if self.delete_input_file:
            for name in context["ti"].xcom_pull(task_ids=self.task_id, key=INPUT_FILES_XCOM) or []:
                hook.delete_file(name)
        return summary

    def _land(self, keys: list[str], output_lines: list[bytes], job_names: list[str]) -> dict[str, Any]:
        writer = ResultsWriter(Path(self.output_path).expanduser())
        try:
            skipped = join_results(keys, output_lines, writer)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        if any(skipped.values()):
            self.log.warning("Output lines skipped: %s", skipped)
        summary = {
            "rows": len(keys),
            "counts": {status: writer.counts[status] for status in STATUSES},
            "usage": dict(writer.usage),
            "batch_jobs": job_names,
            "output_path": str(writer.path),
            "model": self.model,
        }
        self.log.info("Results landed: %s", summary)
        return summary
