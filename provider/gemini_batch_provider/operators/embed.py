"""Embeddings: the batch and online operators, with each record's text turned into a vector.

Same input handling, results file and summary as the text operators; each results row carries its
vector in ``embedding`` (``text`` and ``parsed`` stay None). Batch jobs go through the Gemini Batch
API's ``asyncBatchEmbedContent`` (https://ai.google.dev/gemini-api/docs/batch-mode#batch-embeddings),
online calls through ``embedContent``. Gemini API connections only: the SDK creates no embeddings
batch job on Vertex AI.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, Context

from gemini_batch_provider.core.requests import EmbedRequestSpec
from gemini_batch_provider.operators.base import GeminiRequestsOperator
from gemini_batch_provider.operators.batch import GeminiBatchOperator
from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator

DEFAULT_EMBEDDING_MODEL = "gemini-embedding-001"


class _Embeddings(GeminiRequestsOperator):
    """What turns a text operator into its embeddings twin (listed first among the bases).

    :param prompt_template: ``str.format`` template giving the text to embed, e.g. ``"{title}\\n{body}"``.
    :param model: an embedding model (default ``gemini-embedding-001``).
    :param task_type: what the vectors are for: ``RETRIEVAL_DOCUMENT``, ``RETRIEVAL_QUERY``,
        ``SEMANTIC_SIMILARITY``, ``CLASSIFICATION``, ``CLUSTERING``, ... (the model's default when None).
    :param output_dimensionality: floats per vector (gemini-embedding-001: 3072 unless smaller is asked).
    :raises ValueError: (InputError) when the DAG is parsed, for a size that is not a positive
        integer, or for ``media_fields`` (embeddings take text).
    """

    embeddings = True

    def __init__(self, *, model: str = DEFAULT_EMBEDDING_MODEL, task_type: str | None = None,
                 output_dimensionality: int | None = None, **kwargs: Any) -> None:
        if kwargs.get("media_fields"):
            raise ValueError(f"{kwargs.get('task_id')}: the embeddings operators embed text; media_fields are for "
                             "the text-generating ones")
        # Set first: the base's constructor builds the spec (_spec below) to check it.
        self.embedding_task_type = task_type  # BaseOperator.task_type is Airflow's (the class name)
        self.output_dimensionality = output_dimensionality
        super().__init__(model=model, **kwargs)

    def _spec(self) -> EmbedRequestSpec:
        return EmbedRequestSpec(prompt_template=self.prompt_template, key_field=self.key_field,
                                system_instruction=self.system_instruction, generation_config=self.generation_config,
                                task_type=self.embedding_task_type, output_dimensionality=self.output_dimensionality)

    def execute(self, context: Context) -> Any:
        if self.hook.vertex:
            raise AirflowFailException(f"{self.task_id}: embeddings run on a Gemini API connection (an API key); "
                                       f"{self.gemini_conn_id!r} is a Vertex AI one")
        return super().execute(context)


class GeminiBatchEmbedOperator(_Embeddings, GeminiBatchOperator):
    """Embed every record through Gemini Batch API embeddings jobs, wait (deferrable) and land the vectors.

    Takes the parameters of :class:`~gemini_batch_provider.operators.batch.GeminiBatchOperator`
    (but ``system_instruction``, ``generation_config`` and ``response_schema``) and those of the
    embeddings (``task_type``, ``output_dimensionality``; see the module).
    """


class GeminiConcurrentEmbedOperator(_Embeddings, GeminiConcurrentGenerateOperator):
    """Embed every record online (``embedContent`` calls through the online engine) and land the vectors.

    Takes the parameters of
    :class:`~gemini_batch_provider.operators.concurrent.GeminiConcurrentGenerateOperator` (but
    ``system_instruction``, ``generation_config`` and ``response_schema``) and those of the
    embeddings (``task_type``, ``output_dimensionality``; see the module).
    """
