"""Embeddings: the batch and online operators, with each record's text turned into a vector.

An embeddings operator is its text twin with an embeddings plan (``core.plan.Embedding``): same
input handling, results file and summary, the same steps (``operators.flow``, ``operators.online``);
each results row carries its vector in ``embedding`` (``text`` and ``parsed`` stay None). Batch jobs
go through the Gemini Batch API's ``asyncBatchEmbedContent``
(https://ai.google.dev/gemini-api/docs/batch-mode#batch-embeddings), online calls through
``embedContent``. Gemini API connections only: the SDK creates no embeddings batch job on Vertex AI.

Both take, besides their twin's parameters (but ``system_instruction``, ``generation_config``,
``response_schema`` and ``media_fields``):

:param prompt_template: ``str.format`` template giving the text to embed, e.g. ``"{title}\\n{body}"``.
:param model: an embedding model (default ``gemini-embedding-001``).
:param task_type: what the vectors are for: ``RETRIEVAL_DOCUMENT``, ``RETRIEVAL_QUERY``,
    ``SEMANTIC_SIMILARITY``, ``CLASSIFICATION``, ``CLUSTERING``, ... (the model's default when None).
:param output_dimensionality: floats per vector (gemini-embedding-001: 3072 unless smaller is asked).
:raises InputError: (a ValueError) when the DAG is parsed, for a size that is not a positive
    integer, or for ``media_fields`` (embeddings take text).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import Context, conf

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.limits import DEFAULT_MAX_BYTES
from gemini_batch_provider.core.plan import Embedding
from gemini_batch_provider.links import GeminiBatchJobLink
from gemini_batch_provider.operators import params
from gemini_batch_provider.operators.base import GeminiRequestsOperator

DEFAULT_EMBEDDING_MODEL = "gemini-embedding-001"


class GeminiBatchEmbedOperator(GeminiRequestsOperator):
    """Embed every record through Gemini Batch API embeddings jobs, wait (deferrable) and land the
    vectors; the parameters of :class:`~gemini_batch_provider.operators.batch.GeminiBatchOperator`
    and those of the embeddings (see the module)."""

    operator_extra_links = (GeminiBatchJobLink(),)
    template_fields: Sequence[str] = (*GeminiRequestsOperator.template_fields, "gcs_staging_uri")

    def __init__(self, *, model: str = DEFAULT_EMBEDDING_MODEL, task_type: str | None = None,
                 output_dimensionality: int | None = None, mode: str = "batch", online_threshold: int = 100,
                 deadline: float | timedelta | None = None, on_deadline: str = "online",
                 rerun_failed_online: bool = False, online_concurrency: int = 32, online_rpm: int | None = None,
                 online_tpm: int | None = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 poll_interval: float = 30.0, max_poll_interval: float = 300.0, delete_input_files: bool = True,
                 max_requests_per_job: int | None = None, max_bytes_per_job: int = DEFAULT_MAX_BYTES,
                 max_tokens_per_job: int | None = None, on_changed_input: str = "fail",
                 gcs_staging_uri: str | None = None, priority: int | None = None,
                 max_enqueued_tokens: int | None = None, max_concurrent_jobs: int | None = None, **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)
        self.embedding = Embedding(task_type, output_dimensionality)
        quota = params.batch_quota(self.task_id, max_enqueued_tokens, max_concurrent_jobs)
        self.limits = params.batch_limits(self.task_id, max_requests_per_job, max_bytes_per_job, max_tokens_per_job,
                                          quota)
        self.priority = priority
        if mode == "flex":
            raise InputError(f"{self.task_id}: mode 'flex' is for generateContent: an embeddings call takes no "
                             "service tier (the SDK's EmbedContentConfig has none). Use mode 'batch' for the "
                             "batch price")
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
        """Resume after the wait: land the vectors, whatever the jobs' endings (``flow.execute_complete``)."""
        from gemini_batch_provider.operators import flow

        return flow.execute_complete(self, self.batch, self.gcs_staging_uri, context, event)

    def on_kill(self) -> None:
        """Cancel the jobs this task created that have not ended."""
        from gemini_batch_provider.operators import flow

        flow.on_kill(self)


class GeminiConcurrentEmbedOperator(GeminiRequestsOperator):
    """Embed every record online (``embedContent`` calls through the online engine) and land the
    vectors; the parameters of
    :class:`~gemini_batch_provider.operators.concurrent.GeminiConcurrentGenerateOperator` and those
    of the embeddings (see the module)."""

    def __init__(self, *, model: str = DEFAULT_EMBEDDING_MODEL, task_type: str | None = None,
                 output_dimensionality: int | None = None, concurrency: int = 32, rpm: int | None = None,
                 tpm: int | None = None, request_timeout: float = 120.0, max_attempts: int = 12,
                 **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)
        self.embedding = Embedding(task_type, output_dimensionality)
        self.settings = params.online_settings(self.task_id, concurrency=concurrency, rpm=rpm, tpm=tpm,
                                        request_timeout_s=request_timeout, max_attempts=max_attempts)
        self.check_plan()

    def execute(self, context: Context) -> dict[str, Any]:
        from gemini_batch_provider.operators import online  # the steps: when a task runs, not at parse

        return online.execute(self, self.settings, context)
