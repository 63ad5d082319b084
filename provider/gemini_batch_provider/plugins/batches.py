"""What the Gemini batches page lists, read from Airflow's metadata database: the record each task
pushed as it created its batch jobs (XCom ``gemini_batch_jobs``, ``core.summary.jobs_record``), the
state of that task instance, and the summary it pushed once its results landed (``return_value``,
``core.summary.summarize``). Plain dicts out, JSON-ready; names and numbers only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.providers.common.compat.sdk import XCOM_RETURN_KEY
from sqlalchemy import Text, and_, select, type_coerce
from sqlalchemy.orm import Session, aliased

from gemini_batch_provider.core.summary import JOBS_XCOM_KEY

IN_FLIGHT = frozenset({"queued", "scheduled", "running", "deferred", "up_for_retry", "up_for_reschedule"})
CHART_DAYS = 30


@dataclass(frozen=True)
class BatchFilter:
    """Which records the page asks for.

    :param dag_id: one DAG's, or every readable DAG's (None).
    :param state: task instance state (``deferred``, ``success``, ``failed``...), or any (None).
    :param days: records pushed in the last ``days`` days.
    :param limit: rows returned at most, newest first (the totals count every matching record).
    """

    dag_id: str | None = None
    state: str | None = None
    days: int = 30
    limit: int = 200


def _decoded(raw: Any) -> dict[str, Any]:
    """An XCom value of this provider (a dict of plain JSON) from its column's raw text: the
    column's JSON holds the value's JSON as a string (``XComModel.serialize_value``). Read with
    orjson, not through SQLAlchemy's JSON type and Airflow's decoder: 10,000 rows' worth of
    ``json.loads`` with an object hook was most of the page's time."""
    value = raw
    for _ in range(2):  # the column's JSON, then the value's (a driver may have done the first)
        if not isinstance(value, str | bytes):
            break
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            break
    return value if isinstance(value, dict) else {}


def _row(found: Any, record: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "dag_id": found.dag_id, "run_id": found.run_id, "task_id": found.task_id, "map_index": found.map_index,
        "state": str(found.state) if found.state is not None else None,
        "conn_id": record.get("conn_id"), "model": record.get("model"),
        "batch_jobs": record.get("batch_jobs", []), "link": record.get("link"),
        "output_path": summary.get("output_path") or record.get("output_path"),
        "submitted_at": record.get("submitted_at"),
        "landed_at": found.landed_at.timestamp() if summary and found.landed_at else None,
        "estimated_cost_usd": summary.get("estimated_cost_usd", record.get("estimated_cost_usd")),
        "cost_usd": summary.get("cost_usd"), "rows": summary.get("rows"), "counts": summary.get("counts"),
        "tokens": sum((summary.get("usage") or {}).values()) if summary else None,
    }


def list_batches(session: Session, readable: set[str], wanted: BatchFilter,
                 now: datetime | None = None) -> dict[str, Any]:
    """The page's data: ``{"rows": [...], "totals": {...}, "cost_per_day": [{"day", "cost_usd"}]}``.

    ``rows``: newest first, at most ``wanted.limit``, of the DAGs in ``readable`` only: each row's
    ``dag_id``, ``run_id``, ``task_id``, ``map_index``, task ``state``, ``conn_id``, ``model``,
    ``batch_jobs``, ``link``, ``output_path``, ``submitted_at`` / ``landed_at`` (Unix seconds),
    ``estimated_cost_usd`` / ``cost_usd`` (US dollars), ``rows``, ``counts`` by status and
    ``tokens`` (None until landed). ``totals``: over every matching record, ``records``, ``rows``,
    ``tokens``, ``cost_usd``, ``jobs_in_flight`` (jobs of tasks not yet ended). ``cost_per_day``:
    the landed cost by UTC day of landing, the last 30 days, oldest first.
    """
    now = now or datetime.now(UTC)
    record, summary = aliased(XComModel), aliased(XComModel)
    ti = TaskInstance
    query = (
        select(record.dag_id, record.run_id, record.task_id, record.map_index,
               type_coerce(record.value, Text).label("record"), ti.state,
               type_coerce(summary.value, Text).label("summary"), summary.timestamp.label("landed_at"))
        .join(ti, and_(ti.dag_id == record.dag_id, ti.run_id == record.run_id, ti.task_id == record.task_id,
                       ti.map_index == record.map_index))
        .outerjoin(summary, and_(summary.dag_run_id == record.dag_run_id, summary.task_id == record.task_id,
                                 summary.map_index == record.map_index, summary.key == XCOM_RETURN_KEY))
        .where(record.key == JOBS_XCOM_KEY, record.dag_id.in_(readable),
               record.timestamp >= now - timedelta(days=wanted.days))
        .order_by(record.timestamp.desc())
    )
    if wanted.dag_id:
        query = query.where(record.dag_id == wanted.dag_id)
    if wanted.state:
        query = query.where(ti.state == wanted.state)
    rows: list[dict[str, Any]] = []
    totals = {"records": 0, "rows": 0, "tokens": 0, "cost_usd": 0.0, "jobs_in_flight": 0}
    by_day: dict[str, float] = defaultdict(float)
    for found in session.execute(query):
        record, summary = _decoded(found.record), _decoded(found.summary)
        if len(rows) < wanted.limit:  # the totals count every record; only these are sent
            rows.append(_row(found, record, summary))
        totals["records"] += 1
        totals["rows"] += summary.get("rows") or 0
        totals["tokens"] += sum((summary.get("usage") or {}).values())
        cost = summary.get("cost_usd") or 0.0
        totals["cost_usd"] += cost
        if str(found.state) in IN_FLIGHT:
            totals["jobs_in_flight"] += len(record.get("batch_jobs", []))
        if cost and found.landed_at is not None:
            by_day[found.landed_at.date().isoformat()] += cost
    totals["cost_usd"] = round(totals["cost_usd"], 6)
    days = [(now - timedelta(days=back)).date().isoformat() for back in range(CHART_DAYS - 1, -1, -1)]
    return {"rows": rows, "totals": totals,
            "cost_per_day": [{"day": day, "cost_usd": round(by_day.get(day, 0.0), 6)} for day in days]}
