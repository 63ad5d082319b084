"""What the Gemini batches page lists, read from Airflow's metadata database: the record each task
pushed as it created its batch jobs (XCom ``gemini_batch_jobs``, ``core.summary.jobs_record``), the
state of that task instance, and the summary it pushed once its results landed (``return_value``,
``core.summary.summarize``). Plain dicts out, JSON-ready; names and numbers only.

An XCom is any task's to write, so nothing taken from one is trusted: each record and summary is
checked field by field (``_checked``), a malformed one is shown as such and counted, never a failed
answer for everyone; a job name that has no job's shape is marked invalid (and never asked of the
API); a console link is kept only when it is one the provider builds (``links.is_console_url``).
What is taken from XCom is shown only to a user who may read the DAG's XComs, as Airflow's own
XCom endpoint decides (``may_read_xcom``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.providers.common.compat.sdk import XCOM_RETURN_KEY
from sqlalchemy import Text, and_, cast, select
from sqlalchemy.orm import Session, aliased

from gemini_batch_provider.core.summary import JOBS_XCOM_KEY, SUMMARY_XCOM_KEY
from gemini_batch_provider.core.vocabulary import RowPath, is_job_name
from gemini_batch_provider.links import is_console_url

IN_FLIGHT = frozenset({"queued", "scheduled", "running", "deferred", "up_for_retry", "up_for_reschedule"})
CHART_DAYS = 30
NO_XCOM, MALFORMED = "no permission to read this DAG's XComs", "malformed record"


@dataclass(frozen=True)
class BatchFilter:
    """Which records the page asks for.

    :param dag_id: one DAG's, or every readable DAG's (None).
    :param state: task instance state (``deferred``, ``success``, ``failed``...), or any (None).
    :param days: records pushed in the last ``days`` days.
    :param limit: rows returned at most, newest first (the totals count every matching record).
    :param run_id: one DAG run's (the view on a DAG run), or any (None).
    :param task_id: one task's (with ``run_id`` and ``map_index``: the view on a task instance), or any.
    :param map_index: one map index (-1: an unmapped task), or any (None).
    """

    dag_id: str | None = None
    state: str | None = None
    days: int = 30
    limit: int = 200
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None


def _decoded(raw: Any, *, submitted: bool = False) -> dict[str, Any] | None:
    """An XCom value of this provider (a dict of plain JSON) from its column's raw text: the
    column's JSON holds the value's JSON as a string (``XComModel.serialize_value``). Cast to text
    in the query and read with orjson, not through SQLAlchemy's JSON type and Airflow's decoder, nor
    psycopg2's own ``json.loads`` of a PostgreSQL JSON column: 10,000 rows' worth of ``json.loads``
    was most of the page's time. ``{}`` for no value (a summary not pushed yet), and with
    ``submitted`` for a list of job names (what the submit operator returns: its jobs land in
    another task); None for any other value that is not a dict."""
    if raw is None:
        return {}
    value = raw
    for _ in range(2):  # the column's JSON, then the value's (a driver may have done the first)
        if not isinstance(value, str | bytes):
            break
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            break
    if submitted and type(value) is list and all(type(name) is str for name in value):
        return {}
    return value if isinstance(value, dict) else None


# The types a field of a record or summary may have, as JSON decodes it (bool is not a number here).
_TEXT, _NUMBER, _COUNTS = (frozenset({str, type(None)}), frozenset({int, float, type(None)}),
                           frozenset({dict, type(None)}))
_RECORD_FIELDS = (("conn_id", _TEXT), ("model", _TEXT), ("link", _TEXT), ("output_path", _TEXT),
                  ("estimated_cost_usd", _NUMBER), ("submitted_at", _NUMBER))
_SUMMARY_FIELDS = (("rows", _NUMBER), ("estimated_cost_usd", _NUMBER), ("cost_usd", _NUMBER), ("output_path", _TEXT),
                   ("counts", _COUNTS), ("usage", _COUNTS), ("rows_by_path", _COUNTS), ("saved_cost_usd", _NUMBER))


def _checked(record: dict[str, Any] | None, summary: dict[str, Any] | None) -> bool:
    """Whether the record and summary have the shapes ``jobs_record`` and ``summarize`` give them.
    Plain loops over exact types: every record of the span is checked, 10,000 of them per answer."""
    if record is None or summary is None:
        return False
    jobs = record.get("batch_jobs", [])
    if type(jobs) is not list:
        return False
    for name in jobs:
        if type(name) is not str:
            return False
    for value, fields in ((record, _RECORD_FIELDS), (summary, _SUMMARY_FIELDS)):
        for field_name, kinds in fields:
            if type(value.get(field_name)) not in kinds:
                return False
    for counts in (summary.get("counts"), summary.get("usage"), summary.get("rows_by_path")):
        for number in (counts or {}).values():
            if type(number) not in (int, float):
                return False
    submitter = record.get("submitted_by")
    return submitter is None or (type(submitter) is dict and type(submitter.get("task_id")) is str
                                 and type(submitter.get("map_index")) is int)


def _in_flight(state: str, summary: dict[str, Any]) -> bool:
    """Whether a record's jobs may still be running: its task has not ended, or it is a submit task
    that ended well without a summary (its jobs land in another task, which has not landed them)."""
    return state in IN_FLIGHT or (state == "success" and not summary)


def _row(found: Any, record: dict[str, Any], summary: dict[str, Any], landed_at: datetime | None,
         withheld: str | None) -> dict[str, Any]:
    row = {
        "dag_id": found.dag_id, "run_id": found.run_id, "task_id": found.task_id, "map_index": found.map_index,
        "state": str(found.state) if found.state is not None else None, "withheld": withheld,
    }
    if withheld:
        return {**row, "conn_id": None, "model": None, "jobs": [], "link": None, "output_path": None,
                "submitted_at": None, "landed_at": None, "estimated_cost_usd": None, "cost_usd": None, "rows": None,
                "counts": None, "tokens": None, "reused": None, "saved_cost_usd": None, "submitted_by": None,
                "in_flight": False}
    link = record.get("link")
    return {
        **row, "conn_id": record.get("conn_id"), "model": record.get("model"),
        "submitted_by": (record.get("submitted_by") or {}).get("task_id"),
        "in_flight": _in_flight(row["state"], summary),
        "landed_at": landed_at.timestamp() if summary and landed_at else None,
        "jobs": [{"name": name, "valid": is_job_name(name)} for name in record.get("batch_jobs", [])],
        "link": link if is_console_url(link) else None,
        "output_path": summary.get("output_path") or record.get("output_path"),
        "submitted_at": record.get("submitted_at"),
        "estimated_cost_usd": summary.get("estimated_cost_usd", record.get("estimated_cost_usd")),
        "cost_usd": summary.get("cost_usd"), "rows": summary.get("rows"), "counts": summary.get("counts"),
        "tokens": sum((summary.get("usage") or {}).values()) if summary else None,
        "reused": (summary.get("rows_by_path") or {}).get(RowPath.REUSED, 0) if summary else None,
        "saved_cost_usd": summary.get("saved_cost_usd"),
    }


def list_batches(session: Session, readable: set[str], wanted: BatchFilter, may_read_xcom: Callable[[str], bool],
                 now: datetime | None = None) -> dict[str, Any]:
    """The page's data: ``{"rows": [...], "totals": {...}, "cost_per_day": [{"day", "cost_usd"}]}``.

    ``rows``: newest first, at most ``wanted.limit``, of the DAGs in ``readable`` only: each row's
    ``dag_id``, ``run_id``, ``task_id``, ``map_index``, task ``state``, ``withheld`` (None, or why
    the values below are not shown: ``NO_XCOM`` when ``may_read_xcom(dag_id)`` is false, ``MALFORMED``
    for a record or summary of the wrong shape), ``conn_id``, ``model``, ``jobs`` (``{"name",
    "valid"}``: whether the name has a batch job's shape), ``link`` (None unless a console URL the
    provider builds), ``output_path``, ``submitted_at`` / ``landed_at`` (Unix seconds),
    ``estimated_cost_usd`` / ``cost_usd`` (US dollars), ``rows``, ``counts`` by status, ``tokens``,
    ``reused`` (rows landed from earlier answers, ``core.answers``), ``saved_cost_usd`` (what those
    answers cost when paid for; None until landed), ``submitted_by`` (the task that submitted the
    jobs, when another one landed them: ``GeminiSubmitBatchOperator`` then
    ``GeminiBatchResultsOperator``, shown as one batch under the landing task) and ``in_flight``
    (whether its jobs may still be running: their progress is worth asking). ``totals``: over
    every matching record, ``records``, ``withheld`` (records whose values are not shown, nor
    counted below), ``rows``, ``tokens``, ``cost_usd``, ``reused``, ``saved_cost_usd``,
    ``jobs_in_flight`` (the jobs of records ``in_flight``). ``cost_per_day``: the landed cost by UTC
    day of landing, the last 30 days, oldest first.
    """
    now = now or datetime.now(UTC)
    record, summary, own = aliased(XComModel), aliased(XComModel), aliased(XComModel)
    ti = TaskInstance
    query = (
        select(record.dag_id, record.run_id, record.task_id, record.map_index,
               cast(record.value, Text).label("record"), ti.state,
               cast(summary.value, Text).label("summary"), summary.timestamp.label("landed_at"),
               cast(own.value, Text).label("own_summary"), own.timestamp.label("own_landed_at"))
        .join(ti, and_(ti.dag_id == record.dag_id, ti.run_id == record.run_id, ti.task_id == record.task_id,
                       ti.map_index == record.map_index))
        .outerjoin(summary, and_(summary.dag_run_id == record.dag_run_id, summary.task_id == record.task_id,
                                 summary.map_index == record.map_index, summary.key == XCOM_RETURN_KEY))
        # the summary a task pushed apart from its return value (common.ai's adapter): read first
        .outerjoin(own, and_(own.dag_run_id == record.dag_run_id, own.task_id == record.task_id,
                             own.map_index == record.map_index, own.key == SUMMARY_XCOM_KEY))
        .where(record.key == JOBS_XCOM_KEY, record.dag_id.in_(readable),
               record.timestamp >= now - timedelta(days=wanted.days))
        .order_by(record.timestamp.desc())
    )
    if wanted.dag_id:
        query = query.where(record.dag_id == wanted.dag_id)
    if wanted.state:
        query = query.where(ti.state == wanted.state)
    if wanted.run_id:
        query = query.where(record.run_id == wanted.run_id)
    if wanted.task_id:
        query = query.where(record.task_id == wanted.task_id)
    if wanted.map_index is not None:
        query = query.where(record.map_index == wanted.map_index)
    rows: list[dict[str, Any]] = []
    totals = {"records": 0, "withheld": 0, "rows": 0, "tokens": 0, "cost_usd": 0.0, "reused": 0,
              "saved_cost_usd": 0.0, "jobs_in_flight": 0}
    by_day: dict[str, float] = defaultdict(float)
    xcom_readable: dict[str, bool] = {}
    landed_elsewhere: set[tuple[str, str, int]] = set()
    for found in session.execute(query):
        if found.dag_id not in xcom_readable:
            xcom_readable[found.dag_id] = may_read_xcom(found.dag_id)
        if (found.run_id, found.task_id, found.map_index) in landed_elsewhere:
            continue  # a submit task whose jobs another task landed: shown as that task's batch
        own = found.own_summary is not None
        record = _decoded(found.record)
        summary = _decoded(found.own_summary) if own else _decoded(found.summary, submitted=True)
        landed_at = found.own_landed_at if own else found.landed_at
        withheld = NO_XCOM if not xcom_readable[found.dag_id] else None if _checked(record, summary) else MALFORMED
        record, summary = record or {}, summary or {}  # not read where withheld
        submitter = record.get("submitted_by") if not withheld else None  # of a checked record only
        if submitter:  # newest first: the landing task's record comes before the submit task's
            landed_elsewhere.add((found.run_id, submitter["task_id"], submitter["map_index"]))
        if len(rows) < wanted.limit:  # the totals count every record; only these are sent
            rows.append(_row(found, record, summary, landed_at, withheld))
        totals["records"] += 1
        if withheld:
            totals["withheld"] += 1
            continue
        totals["rows"] += summary.get("rows") or 0
        totals["tokens"] += sum((summary.get("usage") or {}).values())
        cost = summary.get("cost_usd") or 0.0
        totals["cost_usd"] += cost
        totals["reused"] += (summary.get("rows_by_path") or {}).get(RowPath.REUSED, 0)
        totals["saved_cost_usd"] += summary.get("saved_cost_usd") or 0.0
        if _in_flight(str(found.state), summary):
            totals["jobs_in_flight"] += len(record.get("batch_jobs", []))
        if cost and landed_at is not None:
            by_day[landed_at.date().isoformat()] += cost
    totals["cost_usd"], totals["saved_cost_usd"] = round(totals["cost_usd"], 6), round(totals["saved_cost_usd"], 6)
    days = [(now - timedelta(days=back)).date().isoformat() for back in range(CHART_DAYS - 1, -1, -1)]
    return {"rows": rows, "totals": totals,
            "cost_per_day": [{"day": day, "cost_usd": round(by_day.get(day, 0.0), 6)} for day in days]}
