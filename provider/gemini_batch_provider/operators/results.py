"""GeminiBatchResultsOperator: download what batch jobs produced, join it to the input, land it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import Context

from gemini_batch_provider.core.errors import JobsNotEnded
from gemini_batch_provider.core.limits import DEFAULT_MAX_BYTES
from gemini_batch_provider.core.vocabulary import as_job_names, job_name
from gemini_batch_provider.operators import params
from gemini_batch_provider.operators.base import GeminiRequestsOperator


class GeminiBatchResultsOperator(GeminiRequestsOperator):
    """Land the results of ended batch jobs: one row per input record in ``output_path``.

    Give it the same input, request, per-job and ``output_path`` parameters as the
    :class:`~gemini_batch_provider.operators.submit.GeminiSubmitBatchOperator` that created the jobs,
    and the job names it returned, in order: each key's job is read from the submit's ledger (or,
    without one, worked out from the input and the per-job limits). Each job's output file is
    streamed to disk and joined by key; whatever a FAILED, CANCELLED or EXPIRED job produced lands
    too, and rows with no answer get ``missing``, ``cancelled`` or ``expired``. Uploaded input files
    named in the ledger are deleted afterwards unless ``delete_input_files`` is False.

    :param job_names: batch job names, ``batches/<id>``, in shard order (templated; e.g. the
        submit task's XCom).
    :param max_requests_per_job: as the submit task's (only read without a ledger).
    :param max_bytes_per_job: as the submit task's (only read without a ledger).
    :param max_tokens_per_job: as the submit task's (only read without a ledger).
    :param rerun_failed_online: run again online the rows answered with a retryable error
        (HTTP 408/429/5xx) or with no readable answer (``missing``), with ``online_concurrency``,
        ``online_rpm`` and ``online_tpm``.
    :param delete_input_files: delete the uploaded input files once the results have landed.
    :return: (XCom) the summary (see GeminiBatchOperator).
    :raises JobError: (an AirflowException) a job has not ended yet, or ended FAILED, CANCELLED or
        EXPIRED, or rows of jobs that succeeded have no readable answer (raised after the results
        have landed).
    """

    template_fields: Sequence[str] = (*GeminiRequestsOperator.template_fields, "job_names")

    def __init__(self, *, job_names: list[str] | str, max_requests_per_job: int | None = None,
                 max_bytes_per_job: int = DEFAULT_MAX_BYTES, max_tokens_per_job: int | None = None,
                 rerun_failed_online: bool = False, online_concurrency: int = 32, online_rpm: int | None = None,
                 online_tpm: int | None = None, delete_input_files: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = params.batch_limits(self.task_id, max_requests_per_job, max_bytes_per_job, max_tokens_per_job)
        self.job_names = job_names
        self.rerun_failed_online = rerun_failed_online
        self.online = params.online_settings(self.task_id, concurrency=online_concurrency, rpm=online_rpm,
                                             tpm=online_tpm)
        self.delete_input_files = delete_input_files
        self.check_plan()

    def execute(self, context: Context) -> dict[str, Any]:
        # The steps: imported when a task runs, not when the DAG is parsed.
        from gemini_batch_provider.core.land import Rerun
        from gemini_batch_provider.operators import flow
        from gemini_batch_provider.operators.paths import Landing
        from gemini_batch_provider.operators.prepare import check_apart
        from gemini_batch_provider.operators.task import refusing

        plan, backend = self.plan(), self.backend(context)
        with refusing(self.task_id):
            check_apart(plan, self.storage())
        jobs = tuple(backend.job_status(job_name(name)) for name in as_job_names(self.job_names))
        unfinished = [job.name for job in jobs if not job.terminal]
        if unfinished:
            raise JobsNotEnded(f"{self.task_id}: batch jobs not ended yet: {unfinished}; wait with "
                               "GeminiBatchJobSensor first")
        landing = Landing(Rerun(failed=self.rerun_failed_online), self.online, self.delete_input_files)
        flow.record_landing(self, context, plan, backend, jobs)
        return flow.land_jobs(self, context, plan, backend, jobs, landing)
