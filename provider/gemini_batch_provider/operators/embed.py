"""Embeddings: the batch and online operators, with each record's text turned into a vector.

An embeddings operator is its text twin with an embeddings plan (``core.plan.Embedding``): same
input handling, results file and summary; each results row carries its vector in ``embedding``
(``text`` and ``parsed`` stay None). Batch jobs go through the Gemini Batch API's
``asyncBatchEmbedContent`` (https://ai.google.dev/gemini-api/docs/batch-mode#batch-embeddings),
online calls through ``embedContent``. Gemini API connections only: the SDK creates no embeddings
batch job on Vertex AI.

Both take, besides their twin's parameters (but ``system_instruction``, ``generation_config``,
``response_schema`` and ``media_fields``):

:param prompt_template: ``str.format`` template giving the text to embed, e.g. ``"{title}\\n{body}"``.
:param model: an embedding model (default ``gemini-embedding-001``).
:param task_type: what the vectors are for: ``RETRIEVAL_DOCUMENT``, ``RETRIEVAL_QUERY``,
    ``SEMANTIC_SIMILARITY``, ``CLASSIFICATION``, ``CLUSTERING``, ... (the model's default when None).
:param output_dimensionality: floats per vector (gemini-embedding-001: 3072 unless smaller is asked).
:raises ValueError: (InputError) when the DAG is parsed, for a size that is not a positive
    integer, or for ``media_fields`` (embeddings take text).
"""

from __future__ import annotations

from typing import Any

from gemini_batch_provider.core.plan import Embedding
from gemini_batch_provider.operators.batch import GeminiBatchOperator
from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator

DEFAULT_EMBEDDING_MODEL = "gemini-embedding-001"


class GeminiBatchEmbedOperator(GeminiBatchOperator):
    """Embed every record through Gemini Batch API embeddings jobs, wait (deferrable) and land the
    vectors; the parameters of :class:`~gemini_batch_provider.operators.batch.GeminiBatchOperator`
    and those of the embeddings (see the module)."""

    def __init__(self, *, model: str = DEFAULT_EMBEDDING_MODEL, task_type: str | None = None,
                 output_dimensionality: int | None = None, **kwargs: Any) -> None:
        super().__init__(model=model, embedding=Embedding(task_type, output_dimensionality), **kwargs)


class GeminiConcurrentEmbedOperator(GeminiConcurrentGenerateOperator):
    """Embed every record online (``embedContent`` calls through the online engine) and land the
    vectors; the parameters of
    :class:`~gemini_batch_provider.operators.concurrent.GeminiConcurrentGenerateOperator` and those
    of the embeddings (see the module)."""

    def __init__(self, *, model: str = DEFAULT_EMBEDDING_MODEL, task_type: str | None = None,
                 output_dimensionality: int | None = None, **kwargs: Any) -> None:
        super().__init__(model=model, embedding=Embedding(task_type, output_dimensionality), **kwargs)
