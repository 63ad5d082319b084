"""A night of a one-task batch DAG whose worker is killed (SIGKILL) in the middle of its landing,
for ``test_reuse``. Run in a process of its own::

    python -m tests.airflow.killed_landing '{"dag_id": ..., "settings": {...}, "date": ..., "bag": ...,
                                             "kill_at": "<regex>"}'

it runs the night through ``dag.test()`` and kills itself the moment the landing renames a file
whose name matches ``kill_at`` into place (an answer store's new part, or the results file): what a
worker lost at that instant leaves behind. It exits non-zero without being killed when no such
rename came.

Nothing here imports ``tests.conftest``: this process keeps the test's Airflow home, database and
connections, which it inherits through the environment.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pendulum


def night_dag(dag_id: str, settings: dict[str, Any]):
    """A one-task DAG: ``GeminiBatchOperator`` (task ``run``) with ``settings``."""
    from airflow.sdk import DAG

    from gemini_batch_provider.operators.batch import GeminiBatchOperator

    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        GeminiBatchOperator(task_id="run", poll_interval=0.2, **settings)
    return dag


def main() -> None:
    from tests.dagbag import test_dag

    spec = json.loads(sys.argv[1])
    kill_at = re.compile(spec["kill_at"])

    def kill(event: str, args: tuple[Any, ...]) -> None:
        # os.replace and os.rename both raise the audit event "os.rename" (source, target, ...).
        if event == "os.rename" and kill_at.fullmatch(Path(os.fsdecode(args[1])).name):
            os.kill(os.getpid(), signal.SIGKILL)

    dag = night_dag(spec["dag_id"], spec["settings"])
    when = pendulum.parse(spec["date"])
    sys.addaudithook(kill)
    test_dag(dag, Path(spec["bag"]), logical_date=when, run_after=when)
    sys.exit(f"the landing was never killed: no file named like {spec['kill_at']!r} was renamed into place")


if __name__ == "__main__":
    main()
