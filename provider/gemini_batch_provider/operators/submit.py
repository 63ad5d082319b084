"""GeminiSubmitBatchOperator: build, upload and submit batch jobs once per task instance."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import Context

from gemini_batch_provider.core.ledger import Ledger
from gemini_batch_provider.core.shards import DEFAULT_MAX_BYTES
from gemini_batch_provider.core.submit import ON_CHANGED_INPUT, Submission
from gemini_batch_provider.core.summary import JOBS_XCOM_KEY, jobs_record
from gemini_batch_provider.core.waiting import cancel_unfinished, in_thread
from gemini_batch_provider.links import GeminiBatchJobLink, batch_jobs_url
from gemini_batch_provider.operators.base import GeminiRequestsOperator, batch_limits
from gemini_batch_provider.operators.batch_run import submit_batch
from gemini_batch_provider.operators.run import TaskRun, refusing


class GeminiSubmitBatchOperator(GeminiRequestsOperator):
    """Build the requests, split them over batch jobs, upload each shard and create its job, once.

    Every row is checked before anything is uploaded. What was created is kept in a ledger next to
    ``output_path`` (``<output_path>.gemini-batch.json``, see ``core.ledger``) and in each job's
    display name, written before and after each create call: a retry, a worker killed right after a
    create, or a cleared task reattaches to the jobs of the same task instance (dag, task, run, map
    index) instead of paying twice. Jobs that ended FAILED or EXPIRED are submitted anew by the
    next try (``core.submit``). Takes the parameters of
    :class:`~gemini_batch_provider.operators.base.GeminiRequestsOperator` and:

    :param max_requests_per_job: requests per batch job at most (None: no limit).
    :param max_bytes_per_job: bytes of input JSONL per job at most (default 1 GB; the Files API
        takes 2 GB a file).
    :param max_tokens_per_job: estimated tokens per job at most (None: no limit); keep it under
        your tier's batch enqueued-token limit for the model.
    :param on_changed_input: what a try does when the input or request settings differ from what
        the task instance already submitted: ``fail`` (default) or ``submit`` (new jobs; the old
        ones are left as they are, and logged).
    :param gcs_staging_uri: ``gs://bucket/prefix`` where a Vertex AI connection's input files are
        staged and its predictions written (templated; required with Vertex AI, unused otherwise).
    :return: (XCom) the job names, ``["batches/<id>", ...]``, in shard order.
    :raises AirflowFailException: bad input (nothing uploaded), or a changed input under ``fail``.
    """

    operator_extra_links = (GeminiBatchJobLink(),)
    template_fields: Sequence[str] = (*GeminiRequestsOperator.template_fields, "gcs_staging_uri")
    lands_results = False

    def __init__(self, *, max_requests_per_job: int | None = None, max_bytes_per_job: int = DEFAULT_MAX_BYTES,
                 max_tokens_per_job: int | None = None, on_changed_input: str = "fail",
                 gcs_staging_uri: str | None = None, **kwargs: Any) -> None:
        limits = batch_limits(kwargs.get("task_id", ""), max_requests_per_job, max_bytes_per_job, max_tokens_per_job)
        super().__init__(limits=limits, **kwargs)
        if on_changed_input not in ON_CHANGED_INPUT:
            raise ValueError(f"{self.task_id}: on_changed_input must be one of {ON_CHANGED_INPUT}, "
                             f"got {on_changed_input!r}")
        self.on_changed_input = on_changed_input
        self.gcs_staging_uri = gcs_staging_uri
        self._ledger: Ledger | None = None  # what this try submitted, for on_kill

    def execute(self, context: Context) -> list[str]:
        with refusing(self.task_id):
            run = self.task_run(context)
        with run, refusing(self.task_id):
            ledger = self.submit(context, run)
        return ledger.job_names if ledger else []

    def submit(self, context: Context, run: TaskRun) -> Ledger | None:
        """Submit every shard not submitted yet, as ``run``; the ledger (None when the input has no rows)."""
        how = Submission(identity=run.identity, later_try=context["ti"].try_number > 1,
                         on_changed_input=self.on_changed_input, staging_uri=self.gcs_staging_uri, scratch=run.scratch)
        self._ledger = ledger = submit_batch(run, how)
        if ledger is not None:
            link = batch_jobs_url(ledger.job_names, self.hook.vertex_location)
            GeminiBatchJobLink.persist(context, link)
            context["ti"].xcom_push(key=JOBS_XCOM_KEY, value=jobs_record(
                self.gemini_conn_id, run.plan.model, ledger.job_names, link, run.plan.output_path,
                ledger.estimated_cost_usd, ledger.first_submitted_at))
        return ledger

    def lineage_jobs(self) -> list[str]:
        """The batch jobs this try submitted or found, for lineage."""
        return super().lineage_jobs() or (self._ledger.job_names if self._ledger else [])

    def on_kill(self) -> None:
        """Cancel the jobs this task created that have not ended."""
        if self._ledger is None:
            return
        hook = self.hook

        def cancel(name: str) -> None:
            self.log.warning("Task killed: cancelling %s.", name)
            hook.cancel_batch_job(name)

        asyncio.run(cancel_unfinished(self._ledger.job_names, in_thread(hook.get_job_status), in_thread(cancel)))
