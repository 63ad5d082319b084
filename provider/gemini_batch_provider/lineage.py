"""OpenLineage for the operators: the input file and the results file as datasets, the model, the
batch jobs and the row counts as run facets.

The operators' ``get_openlineage_facets_on_start`` / ``_on_complete`` call :func:`operator_lineage`,
and only the OpenLineage provider calls those (the ``openlineage`` extra), so this module, which
needs it, is imported there and nowhere else.

Dataset names follow OpenLineage's naming spec (https://openlineage.io/docs/spec/naming): a local
path is namespace ``file``, name the absolute path; ``s3://bucket/key`` and ``gs://bucket/key`` are
namespace ``s3://bucket`` (``gs://bucket``), name ``key``; any other URL is namespace
``scheme://host``, name its path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.openlineage.facet import (
    ExternalQueryRunFacet,
    InputDataset,
    OutputDataset,
    OutputStatisticsOutputDatasetFacet,
    RunFacet,
)
from airflow.providers.openlineage.extractors import OperatorLineage
from attrs import define, field

if TYPE_CHECKING:
    from gemini_batch_provider.operators.base import GeminiRequestsOperator

BUCKETS = ("s3", "s3a", "gs", "gcs", "abfs", "abfss", "wasbs")


@define
class GeminiBatchRunFacet(RunFacet):
    """What a run of this provider's operators did at Gemini (run facet ``geminiBatch``).

    :param model: the Gemini model id, e.g. ``gemini-3-flash-preview``.
    :param batchJobs: the batch jobs' names (``batches/<id>``), in shard order; empty online.
    :param rows: rows landed in the results file (None before anything landed).
    :param counts: rows landed by status (``succeeded``, ``failed``...).
    :param path: ``batch``, ``online`` or ``batch+online``.
    :param costUsd: what the landed rows cost, US dollars (None when the model's price is unknown).
    :param estimatedCostUsd: the estimate made before anything was sent, US dollars.
    """

    model: str
    batchJobs: list[str] = field(factory=list)
    rows: int | None = field(default=None)
    counts: dict[str, int] | None = field(default=None)
    path: str | None = field(default=None)
    costUsd: float | None = field(default=None)
    estimatedCostUsd: float | None = field(default=None)


def dataset_name(location: str) -> tuple[str, str]:
    """``(namespace, name)`` of a file by OpenLineage's naming spec (see the module's docstring)."""
    parts = urlsplit(location)
    if parts.scheme in ("", "file"):
        return "file", parts.path
    if parts.scheme in BUCKETS:
        return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
    return f"{parts.scheme}://{parts.netloc}", parts.path


def operator_lineage(*, model: str, input_path: str | None, output_path: str | None,
                     jobs: list[str] | None = None, summary: dict[str, Any] | None = None,
                     source: str = "gemini") -> OperatorLineage:
    """The lineage of one task: ``input_path`` read, ``output_path`` written (None: the operator
    writes no results file), and what ran at Gemini.

    :param model: the Gemini model id.
    :param input_path: the input file's location; None when the input is records given to the task,
        which are no dataset (their lineage is that of the task that made them).
    :param output_path: the results file's location, or None.
    :param jobs: the batch jobs' names (``batches/<id>``).
    :param summary: the task's XCom summary once the results landed (``core.summary``): adds the
        row counts and the cost, and the results' row count as ``outputStatistics``.
    :param source: ``gemini`` (the Gemini API) or ``vertexai``, for the ``externalQuery`` facet.
    :return: ``OperatorLineage``; its run facets are ``geminiBatch`` and, for a single batch job,
        ``externalQuery`` (its ``externalQueryId`` is the job's name).
    """
    jobs = jobs or []
    inputs = [InputDataset(*dataset_name(input_path))] if input_path else []
    outputs = []
    if output_path:
        statistics = {}
        if summary is not None:
            statistics["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=summary["rows"])
        outputs.append(OutputDataset(*dataset_name(output_path), outputFacets=statistics))
    landed = summary or {}
    run_facets: dict[str, RunFacet] = {"geminiBatch": GeminiBatchRunFacet(
        model=model, batchJobs=jobs, rows=landed.get("rows"), counts=landed.get("counts"),
        path=landed.get("path"), costUsd=landed.get("cost_usd"), estimatedCostUsd=landed.get("estimated_cost_usd"),
    )}
    if len(jobs) == 1:
        run_facets["externalQuery"] = ExternalQueryRunFacet(externalQueryId=jobs[0], source=source)
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)


def task_lineage(task: GeminiRequestsOperator, **ran: Any) -> OperatorLineage:
    """``operator_lineage`` of one of this provider's tasks: its input file and, unless it only
    submits (``lands_results``), its results file; and what ``ran`` adds (jobs, summary, source)."""
    return operator_lineage(model=task.model, input_path=task.input_path,
                            output_path=task.output_path if task.lands_results else None, **ran)
