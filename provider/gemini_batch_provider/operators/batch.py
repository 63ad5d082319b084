"""GeminiBatchOperator: records or a file in, Gemini batch jobs (or the online engine), a results file out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Context, conf

from gemini_batch_provider.core.limits import DEFAULT_MAX_BYTES
from gemini_batch_provider.links import GeminiBatchJobLink
from gemini_batch_provider.operators import params
from gemini_batch_provider.operators.base import GeminiRequestsOperator


class GeminiBatchOperator(GeminiRequestsOperator):
    """Run a set of records through the Gemini Batch API (or online, when routed so) and land one
    result row per record: submit, wait, land, in one task.

    Submits as :class:`~gemini_batch_provider.operators.submit.GeminiSubmitBatchOperator` does (every
    row checked first; the input split over jobs; each job created once per task instance, whatever
    the retries), waits for every job (in the triggerer when ``deferrable``, else polling in the
    worker), then lands as :class:`~gemini_batch_provider.operators.results.GeminiBatchResultsOperator`
    does. Takes the parameters of :class:`~gemini_batch_provider.operators.base.GeminiRequestsOperator`,
    the submit operator's (``max_requests_per_job``, ``max_bytes_per_job``, ``max_tokens_per_job``,
    ``on_changed_input``, ``gcs_staging_uri``, ``priority``), and:

    :param mode: ``batch`` (default); ``online`` (every row through the online engine, at the
        interactive price); ``flex`` (every row through the online engine on Gemini's Flex tier: the
        batch price, each answered within minutes, shed calls retried; rows land with ``path``
        ``flex``); ``auto`` (online when there are at most ``online_threshold`` rows).
    :param online_threshold: rows at or below which ``auto`` goes online.
    :param deadline: seconds (or a timedelta) after the first job was created, across retries,
        after which unfinished jobs are cancelled, and shards still waiting for room in the batch
        quota are never created. On Flex, seconds after the Flex run started, when its calls in
        flight are cancelled. None: wait for the jobs.
    :param on_deadline: ``online`` (default): the rows the cancelled jobs did not answer (or Flex
        did not) finish online, on the Standard tier; ``cancel``: they land ``cancelled`` and the
        task fails.
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
    :param max_enqueued_tokens: the project's batch limit on the model's enqueued tokens (estimated
        tokens of its unfinished batch jobs; AI Studio shows it, https://ai.google.dev/gemini-api/docs/rate-limits#batch-mode),
        or the share of it this task may take. Each job is cut to fit it, and the jobs are created
        in waves: those that fit, then the next as earlier ones end, the task deferred in between
        (None: no limit). A create the API refuses with 429 (the quota is full, whoever filled it)
        waits for room the same way instead of failing the task.
    :param max_concurrent_jobs: this task's unfinished batch jobs at most, in the same waves (None: no limit).
    :return: (XCom) summary (``core.summary.summarize``): ``rows``, ``counts`` by status, ``usage``
        token totals of what this run sent, ``path`` (``batch``, ``online``, ``flex``,
        ``batch+online`` or ``reused``), ``rows_by_path``, ``rows_by_service_tier``,
        ``batch_jobs``, ``output_path``, ``model``, ``estimated_cost_usd``, ``cost_usd`` and
        ``saved_cost_usd`` (US dollars; None for a model without a known price). Never the rows
        themselves: each row lands exactly once in ``output_path``, with the 14 fields
        ``core.results`` lists; ``gemini_batch_provider.results.read_results(summary)`` reads them back.
    :raises InputError: (an AirflowFailException) bad input (no retry helps), naming the row and
        the fix, or an estimated cost over ``max_cost_usd``; nothing was uploaded or billed.
    :raises JobError: (an AirflowException) a job ended FAILED, CANCELLED or EXPIRED (after what it
        produced landed), or polling failed.
    """

    operator_extra_links = (GeminiBatchJobLink(),)
    template_fields: Sequence[str] = (*GeminiRequestsOperator.template_fields, "gcs_staging_uri")

    def __init__(self, *, mode: str = "batch", online_threshold: int = 100, deadline: float | timedelta | None = None,
                 on_deadline: str = "online", rerun_failed_online: bool = False, online_concurrency: int = 32,
                 online_rpm: int | None = None, online_tpm: int | None = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 poll_interval: float = 30.0, max_poll_interval: float = 300.0, delete_input_files: bool = True,
                 max_requests_per_job: int | None = None, max_bytes_per_job: int = DEFAULT_MAX_BYTES,
                 max_tokens_per_job: int | None = None, on_changed_input: str = "fail",
                 gcs_staging_uri: str | None = None, priority: int | None = None,
                 max_enqueued_tokens: int | None = None, max_concurrent_jobs: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        quota = params.batch_quota(self.task_id, max_enqueued_tokens, max_concurrent_jobs)
        self.limits = params.batch_limits(self.task_id, max_requests_per_job, max_bytes_per_job, max_tokens_per_job,
                                          quota)
        self.priority = priority
        self.batch = params.BatchParams.of(
            self.task_id, mode=mode, online_threshold=online_threshold, deadline=deadline, on_deadline=on_deadline,
            rerun_failed_online=rerun_failed_online, online_concurrency=online_concurrency, online_rpm=online_rpm,
            online_tpm=online_tpm, on_changed_input=on_changed_input, deferrable=deferrable,
            poll_interval=poll_interval, max_poll_interval=max_poll_interval, delete_input_files=delete_input_files,
            quota=quota)
        self.deferrable = deferrable
        self.gcs_staging_uri = gcs_staging_uri
        self.check_plan()

    def execute(self, context: Context) -> dict[str, Any]:
        from gemini_batch_provider.operators import flow  # the steps: when a task runs, not at parse

        return flow.execute(self, self.batch, self.gcs_staging_uri, context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the wait: land the results, whatever the jobs' endings (``flow.execute_complete``)."""
        from gemini_batch_provider.operators import flow

        return flow.execute_complete(self, self.batch, self.gcs_staging_uri, context, event)

    def on_kill(self) -> None:
        """Cancel the jobs this task created that have not ended."""
        from gemini_batch_provider.operators import flow

        flow.on_kill(self)
