"""The online operators' steps: every row checked and its cost estimated, then all of them run
through the online engine (``operators.paths.land_online``). Shared by composition by
``GeminiConcurrentGenerateOperator`` and ``GeminiConcurrentEmbedOperator``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Context

from gemini_batch_provider.core.estimate import checked_cost
from gemini_batch_provider.core.plan import OnlineSettings
from gemini_batch_provider.operators import paths, reuse
from gemini_batch_provider.operators.prepare import prepare
from gemini_batch_provider.operators.task import fail_after_landing, refusing, run_identity, scratch_folder

if TYPE_CHECKING:
    from pathlib import Path

    from gemini_batch_provider.core.answers import Reuse
    from gemini_batch_provider.core.backend import BatchBackend
    from gemini_batch_provider.core.plan import BatchPlan, RunInput
    from gemini_batch_provider.operators.base import GeminiRequestsOperator


def execute(task: GeminiRequestsOperator, limits: OnlineSettings, context: Context) -> dict[str, Any]:
    """Check every row and the budget (at the interactive price), then run them all online; the summary.

    :raises RowsUnanswered: after landing, for rows the API never answered."""
    plan, backend, storage = task.plan(), task.backend(context), task.storage()
    with scratch_folder(run_identity(context)) as scratch:
        with refusing(task.task_id):
            run_input = prepare(plan, backend, storage, scratch, task.log)
            reused = reuse.decide(plan, storage, run_input, None, None, scratch, task.log)
            if reused is not None and not reused.sent:
                return task.landed_summary(paths.land_reused(plan, storage, reused, scratch, task.log))
            to_send = reused.narrowed(run_input) if reused is not None else run_input
            found, cost = checked_cost(plan, backend, to_send, False, task.log, limits.service_tier)
        return land_all(task, context, plan, backend, to_send, found.requests, cost, limits, scratch, reused)


def land_all(task: GeminiRequestsOperator, context: Context, plan: BatchPlan, backend: BatchBackend,
             run_input: RunInput, rows: int, estimated_cost_usd: float | None, limits: OnlineSettings,
             scratch: Path, reused: Reuse | None = None, deadline: paths.FlexDeadline | None = None) -> dict[str, Any]:
    """Write the ``reused`` rows and run all ``rows`` of ``run_input`` online into the results file
    (``paths.land_online``, until the Flex ``deadline``), its new answers added to the answer store
    first; the summary, kept for the outlets.

    :raises RowsUnanswered: after landing, for rows the API never answered or Flex did not by the deadline."""
    writer = paths.open_writer(plan, task.storage(), reuse.sent_digests(plan, run_input), scratch, task.log)
    summary, error = paths.land_online(plan, backend, task.hook.client, run_input, rows, estimated_cost_usd, limits,
                                       writer, task.log, reused, deadline)
    task.landed_summary(summary)
    fail_after_landing(context, task.log, summary, error)
    return summary
