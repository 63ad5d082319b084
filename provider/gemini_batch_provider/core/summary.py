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
    """``{"rows", "counts", "usage", "path", "rows_by_path", "batch_jobs", "output_path", "model",
    "estimated_cost_usd", "cost_usd"}``, JSON-ready (plain strings and numbers)."""
    return {
        "rows": rows,
        "counts": {status.value: writer.counts[status] for status in RowStatus},
        "usage": dict(writer.usage),
        "path": str(path),
        "rows_by_path": dict(writer.paths),
        "batch_jobs": batch_jobs,
        "output_path": writer.location,
        "model": model,
        "estimated_cost_usd": estimated_cost_usd,
        "cost_usd": actual_cost(writer, price),
    }
