"""The cost estimate of a try's requests, checked against the plan's budget before anything is
uploaded or billed: the rule of thumb (``core.tokens``), its prompt side scaled by what the API's
``countTokens`` (not billed) made of the first rows."""

from __future__ import annotations

import logging
from contextlib import closing

from .backend import BatchBackend
from .cost import Estimate, estimate
from .plan import BatchPlan, RunInput
from .tokens import prompt_ratio
from .transient import is_api_error


def counted_ratio(plan: BatchPlan, backend: BatchBackend, run_input: RunInput, log: logging.Logger) -> float | None:
    """What the API counts for the first rows' prompts over the rule of thumb (``core.tokens.prompt_ratio``);
    None when the sample is 0, no row could be counted, or the API did not answer (the estimate
    then stands on the rule of thumb: a count is worth no failed task)."""
    rows = plan.budget.count_tokens_sample
    if not rows:
        return None
    try:  # the requests are left after a few: closed here, so that their key index is closed in this thread
        with closing(run_input.requests()) as requests:
            return prompt_ratio((request for _, request in requests), plan.model, backend, rows)
    except Exception as exc:
        if not is_api_error(exc):
            raise
        log.warning("countTokens did not answer (%s); the estimate counts 4 characters a token", exc)
        return None


def checked_cost(plan: BatchPlan, backend: BatchBackend, run_input: RunInput, batch: bool,
                 log: logging.Logger, service_tier: str | None = None) -> tuple[Estimate, float | None]:
    """Build every request once, so that bad input fails before the first call; their estimate, and
    its cost in US dollars (at the batch or the interactive price, or at ``service_tier``'s: an
    online run's) checked against the budget.

    :raises InputError: a bad row. :raises BudgetExceeded: over ``max_cost_usd``."""
    found = estimate(run_input.requests(), plan.model)
    ratio = counted_ratio(plan, backend, run_input, log)
    return found, plan.budget.checked(plan.model, found, batch, ratio, log, service_tier)
