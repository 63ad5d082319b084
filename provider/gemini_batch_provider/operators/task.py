"""What one try of a task instance needs from Airflow and from the machine, and nothing of the API:
its run-stable identity, its scratch folder, its refusals, and its summary kept in XCom when it
fails after its results landed.

The operators are thin: each builds a ``BatchPlan`` (``core.plan``) and hands it, with the values
made here, to the stages (``operators.prepare``, then ``operators.paths``), which pass plain data
on: a ``RunInput``, a ``Ledger``, a ``WaitEvent``, a summary.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import XCOM_RETURN_KEY, Context

from gemini_batch_provider.core.errors import BudgetExceeded, InputError


def run_identity(context: Context) -> str:
    """The task instance's run-stable identity: the same for every try, never the try number."""
    ti = context["ti"]
    return f"airflow:{ti.dag_id}:{ti.task_id}:{ti.run_id}:{ti.map_index}"


def task_of_identity(identity: str, context: Context) -> dict[str, Any] | None:
    """``{"task_id", "map_index"}`` of the task instance of this try's DAG run that a
    ``run_identity`` names; None for another DAG's or run's."""
    ti = context["ti"]
    prefix = f"airflow:{ti.dag_id}:"
    if not identity.startswith(prefix):
        return None
    task_id, _, rest = identity.removeprefix(prefix).partition(":")  # task ids hold no ":"
    map_index = rest.removeprefix(f"{ti.run_id}:")
    if map_index == rest or not map_index.lstrip("-").isdigit():
        return None
    return {"task_id": task_id, "map_index": int(map_index)}


@contextmanager
def refusing(task_id: str) -> Iterator[None]:
    """Name the task in a refusal made before anything was sent; no retry can help it."""
    try:
        yield
    except BudgetExceeded as exc:
        raise BudgetExceeded(f"{task_id}: {exc}") from None
    except InputError as exc:
        raise type(exc)(f"{task_id}: bad input, nothing was uploaded or billed: {exc}") from None


def task_scratch(identity: str) -> Path:
    """The task instance's folder in the system's temporary folder (its tries' scratch folders)."""
    return Path(tempfile.gettempdir()) / f"gemini-task-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


@contextmanager
def scratch_folder(identity: str) -> Iterator[Path]:
    """A new folder for one try's downloads (remote input, media, batch output), inside the task
    instance's own, removed when the try is done with it. What a try killed mid-way (no ``finally``
    runs) left there is removed first."""
    parent = task_scratch(identity)
    shutil.rmtree(parent, ignore_errors=True)
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with suppress(OSError):  # another try of the task instance may have begun in it
            folder.parent.rmdir()


def fail_after_landing(context: Context, log: logging.Logger, summary: dict[str, Any],
                       error: Exception | None) -> None:
    """Raise ``error`` (a job that did not succeed, rows nobody answered) once the results have
    landed, their summary pushed to XCom first, under ``return_value`` as a success's is, so that
    what was spent shows in the UI and to downstream ``all_done`` tasks. Nothing when ``error`` is None."""
    if error is None:
        return
    context["ti"].xcom_push(key=XCOM_RETURN_KEY, value=summary)
    log.info("The task fails after its results landed: their summary is in XCom (%s).", XCOM_RETURN_KEY)
    raise error
