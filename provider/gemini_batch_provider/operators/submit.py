"""GeminiSubmitBatchOperator: build, upload and submit batch jobs once per task instance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import Context

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.limits import DEFAULT_MAX_BYTES
from gemini_batch_provider.links import GeminiBatchJobLink
from gemini_batch_provider.operators import params
from gemini_batch_provider.operators.base import GeminiRequestsOperator


class GeminiSubmitBatchOperator(GeminiRequestsOperator):
    """Build the requests, split them over batch jobs, upload each shard and create its job, once.

    Every row is checked before anything is uploaded. What was created is kept in a ledger next to
    ``output_path`` (``<output_path>.gemini-batch.json``, see ``core.ledger``) and in each job's
    display name, written before and after each create call: a retry, a worker killed right after a
    create, or a cleared task reattaches to the jobs of the same task instance (dag, task, run, map
    index) instead of paying twice. Jobs that ended FAILED or EXPIRED are submitted anew by the
    next try (``core.submit``). It submits every row: answer reuse (``reuse``, ``answer_store``)
    belongs to the operators that land what they send (``GeminiBatchOperator``); the results
    operator of a split pair records each row's request digest and adds its answers to an answer
    store. Takes the parameters of
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
    :param priority: each batch job's ``priority``, a whole number (int64): among the project's
        jobs, higher runs first; negatives allowed; None: the API's default, 0. Gemini Developer API
        only (https://ai.google.dev/api/batch-mode); a Vertex AI connection refuses it before
        anything is uploaded.
    :return: (XCom) the job names, ``["batches/<id>", ...]``, in shard order.
    :raises InputError: (an AirflowFailException) bad input (nothing uploaded), or a changed input
        under ``fail``.
    """

    operator_extra_links = (GeminiBatchJobLink(),)
    template_fields: Sequence[str] = (*GeminiRequestsOperator.template_fields, "gcs_staging_uri")
    lands_results = False

    def __init__(self, *, max_requests_per_job: int | None = None, max_bytes_per_job: int = DEFAULT_MAX_BYTES,
                 max_tokens_per_job: int | None = None, on_changed_input: str = "fail",
                 gcs_staging_uri: str | None = None, priority: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = params.batch_limits(self.task_id, max_requests_per_job, max_bytes_per_job, max_tokens_per_job)
        self.priority = priority
        params.check_on_changed_input(self.task_id, on_changed_input)
        if self.on_bad_row != "fail":  # the results operator lands what the jobs answer, never a refused row
            raise InputError(f"{self.task_id}: on_bad_row={self.on_bad_row!r} is for the operators that land their "
                             "rows (GeminiBatchOperator); this one submits every row or none")
        self.on_changed_input = on_changed_input
        self.gcs_staging_uri = gcs_staging_uri
        self.check_plan()

    def execute(self, context: Context) -> list[str]:
        from gemini_batch_provider.operators import flow  # the steps: when a task runs, not at parse
        from gemini_batch_provider.operators.prepare import prepare
        from gemini_batch_provider.operators.task import refusing, run_identity, scratch_folder

        plan, backend = self.plan(), self.backend(context, self.gcs_staging_uri)
        GeminiBatchJobLink.no_jobs(context)  # until it creates some
        with scratch_folder(run_identity(context)) as scratch, refusing(self.task_id):
            run_input = prepare(plan, backend, self.storage(), scratch, self.log)
            wave = flow.submit(self, context, plan, backend, run_input, self.on_changed_input, scratch)
        return wave.ledger.job_names if wave else []

    def on_kill(self) -> None:
        """Cancel the jobs this task created that have not ended."""
        from gemini_batch_provider.operators import flow

        flow.on_kill(self)
