"""The time a batch task's own code runs, for the benchmarks that run one through ``dag.test()``."""

from __future__ import annotations

import time

from gemini_batch_provider.operators.batch import GeminiBatchOperator


class TimedBatchOperator(GeminiBatchOperator):
    """Adds up the time the task's own code runs, the worker slot's time: ``execute`` before the
    deferral, then each ``execute_complete`` after one (``resumes``); Airflow's start-up of each
    and the wait on the jobs are left out. ``reset()`` before each run."""

    own_seconds = 0.0
    resumes = 0

    @classmethod
    def reset(cls) -> None:
        cls.own_seconds, cls.resumes = 0.0, 0

    def execute(self, context):
        return self._timed(super().execute, context)

    def execute_complete(self, context, event=None):
        type(self).resumes += 1
        return self._timed(super().execute_complete, context, event)

    def _timed(self, method, *args):
        started = time.monotonic()
        try:
            return method(*args)
        finally:
            type(self).own_seconds += time.monotonic() - started
