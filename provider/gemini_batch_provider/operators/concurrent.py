"""GeminiConcurrentGenerateOperator: the same requests as a batch, run online for small urgent sets."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import Context

from gemini_batch_provider.operators import params
from gemini_batch_provider.operators.base import GeminiRequestsOperator


class GeminiConcurrentGenerateOperator(GeminiRequestsOperator):
    """Run one ``generateContent`` call per record through the online engine and land the results.

    Same input, results file and summary as
    :class:`~gemini_batch_provider.operators.batch.GeminiBatchOperator`, at the interactive price,
    done in seconds to minutes. Every row is checked before the first call. Takes the parameters of
    :class:`~gemini_batch_provider.operators.base.GeminiRequestsOperator` and:

    :param concurrency: calls in flight at most.
    :param rpm: requests per minute at most, e.g. the model's quota (None: no client-side limit).
    :param tpm: tokens per minute at most (None: no client-side limit).
    :param request_timeout: seconds a call may take before it is retried (default 120; on Flex,
        ``FLEX_REQUEST_TIMEOUT_S``, 900: Flex answers within minutes).
    :param max_attempts: calls per row at most; a row whose attempts run out lands ``failed``.
    :param service_tier: the tier every call asks for (https://ai.google.dev/gemini-api/docs/flex-inference):
        ``standard`` (default); ``flex``, at the batch price, answered within minutes, calls the API
        sheds under load retried (rows land with ``path`` ``flex``); ``priority``, dearer (up to
        twice Standard), answered first and never shed. Each row's ``usage.service_tier`` says
        which tier served it, and the summary counts them (``rows_by_service_tier``).
    :return: (XCom) the summary, with ``path`` ``online`` (``flex`` on Flex) and no ``batch_jobs``.
    :raises InputError: (an AirflowFailException) bad input, naming the row and the fix; nothing was sent.
    :raises RowsUnanswered: (a JobError, an AirflowException) after landing, when rows ran out of
        ``max_attempts`` on transient errors (429, 5xx, timeouts, dropped connections).
    """

    def __init__(self, *, concurrency: int = 32, rpm: int | None = None, tpm: int | None = None,
                 request_timeout: float | None = None, max_attempts: int = 12, service_tier: str = "standard",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = params.online_settings(self.task_id, concurrency=concurrency, rpm=rpm, tpm=tpm,
                                               request_timeout_s=request_timeout, max_attempts=max_attempts,
                                               service_tier=service_tier)
        self.check_plan()

    def execute(self, context: Context) -> dict[str, Any]:
        from gemini_batch_provider.operators import online  # the steps: when a task runs, not at parse

        return online.execute(self, self.settings, context)
