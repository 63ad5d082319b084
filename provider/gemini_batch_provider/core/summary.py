"""The summary of a landed run, the one thing that goes to XCom: counts by status, token usage,
cost, which path produced the rows, the batch jobs and where the rows are; never the rows.

Every count comes from the results writer's tallies of what it wrote, so they add up to ``rows``.
"""

from __future__ import annotations

from typing import Any

from .cost import ModelPrice
from .results import ResultsWriter
from .vocabulary import RowStatus


def actual_cost(writer: ResultsWriter, price: ModelPrice | None) -> float | None:
    """US dollars for what the rows report in ``usage_metadata``, each row at its own tier, batch
    rows at the batch price (the writer's ``cost_usd``); None without a price (a model without
    a known one, or embeddings, which report no usage)."""
    if price is None:
        return None
    return round(writer.cost_usd, 6)


def summarize(writer: ResultsWriter, rows: int, path: str, batch_jobs: list[str], model: str,
              estimated_cost_usd: float | None, price: ModelPrice | None) -> dict[str, Any]:
    """``{"rows", "counts", "usage", "path", "rows_by_path", "rows_by_service_tier", "batch_jobs",
    "output_path", "model", "estimated_cost_usd", "cost_usd", "saved_cost_usd"}``, JSON-ready
    (plain strings and numbers). ``rows_by_service_tier`` counts the online rows this run paid for
    by the tier the API says served them (``standard``, ``flex``, ``priority``).

    ``usage`` and ``cost_usd`` count what this run spent; ``rows_by_path["reused"]`` the rows
    earlier answers settled, and ``saved_cost_usd`` what those answers cost when they were paid
    for, each at the price of the path that paid (None without a price)."""
    return {
        "rows": rows,
        "counts": {status.value: writer.counts[status] for status in RowStatus},
        "usage": dict(writer.usage),
        "path": str(path),
        "rows_by_path": dict(writer.paths),
        "rows_by_service_tier": dict(writer.service_tiers),
        "batch_jobs": batch_jobs,
        "output_path": writer.location,
        "model": model,
        "estimated_cost_usd": estimated_cost_usd,
        "cost_usd": actual_cost(writer, price),
        "saved_cost_usd": None if price is None else round(writer.saved_usd, 6),
    }


JOBS_XCOM_KEY = "gemini_batch_jobs"  # the XCom a submitting task pushes (``jobs_record``)
# The summary of a task whose return value is another's (common.ai's @task.llm_batch returns its
# manifest): what the Gemini batches page reads before the return value.
SUMMARY_XCOM_KEY = "gemini_batch_summary"


def jobs_record(conn_id: str | None, model: str, batch_jobs: list[str], link: str, output_path: str | None,
                estimated_cost_usd: float | None, submitted_at: float | None,
                submitted_by: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a task that created batch jobs pushes to XCom under ``JOBS_XCOM_KEY`` as soon as they
    exist, for the Gemini batches page (``plugins``) to find them while they run: ``{"conn_id",
    "model", "batch_jobs", "link" (the jobs in Google's console, ``links``), "output_path",
    "estimated_cost_usd" (US dollars), "submitted_at" (Unix seconds of the first create),
    "submitted_by"}``; a task that lands jobs another created pushes it too, ``submitted_by`` naming
    that task (``{"task_id", "map_index"}``). Names and numbers only: never a key, a prompt or a row."""
    return {"conn_id": conn_id, "model": model, "batch_jobs": batch_jobs, "link": link, "output_path": output_path,
            "estimated_cost_usd": estimated_cost_usd, "submitted_at": submitted_at, "submitted_by": submitted_by}
