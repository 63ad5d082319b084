"""GeminiBatchJobSensor: wait, deferred, for batch jobs that something else created."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, Context, PokeReturnValue, conf

from gemini_batch_provider.core.errors import PollingFailed
from gemini_batch_provider.core.jobs import validate_event
from gemini_batch_provider.core.vocabulary import TERMINAL, WaitStatus, as_job_names
from gemini_batch_provider.hooks import DEFAULT_CONN_ID
from gemini_batch_provider.triggers.batch import GeminiBatchJobTrigger

if TYPE_CHECKING:
    from gemini_batch_provider.hooks.gemini import GeminiHook


class GeminiBatchJobSensor(BaseSensorOperator):
    """Wait until every given batch job has ended (succeeded or not); never cancels anything.

    With ``deferrable`` the wait runs in the triggerer (``GeminiBatchJobTrigger``), holding no
    worker slot; the sensor's ``timeout`` bounds it. Without, it pokes every ``poke_interval``
    seconds like any sensor.

    :param job_names: batch job names, ``batches/<id>`` (templated; e.g. another task's XCom).
    :param gemini_conn_id: connection of type ``gemini``.
    :param deferrable: wait in the triggerer; default: ``[operators] default_deferrable``, as the
        official providers do.
    :param max_poll_interval: longest wait between the trigger's polls, seconds (polls start
        ``poke_interval`` apart and back off).
    :return: (XCom) ``[{"name", "state", "output_file"}]`` per job, in the order given.
    :raises AirflowException: polling failed (a permanent error, or too many transient ones in a row).
    """

    template_fields: Sequence[str] = ("job_names",)
    ui_color = "#e8f0fe"

    def __init__(self, *, job_names: list[str] | str, gemini_conn_id: str = DEFAULT_CONN_ID,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 max_poll_interval: float = 300.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_names = job_names
        self.gemini_conn_id = gemini_conn_id
        self.deferrable = deferrable
        self.max_poll_interval = max_poll_interval

    @cached_property
    def hook(self) -> GeminiHook:
        from gemini_batch_provider.hooks.gemini import GeminiHook  # the SDK: only once a task runs

        return GeminiHook(self.gemini_conn_id)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        self.defer(
            trigger=GeminiBatchJobTrigger(job_names=as_job_names(self.job_names), gemini_conn_id=self.gemini_conn_id,
                                          poll_interval=self.poke_interval,
                                          max_poll_interval=max(self.max_poll_interval, self.poke_interval)),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def poke(self, context: Context) -> Any:
        jobs = self.hook.job_summaries(self.job_names)
        self.log.info("Batch jobs: %s", [(job["name"], job["state"]) for job in jobs])
        return PokeReturnValue(is_done=all(job["state"] in TERMINAL for job in jobs), xcom_value=jobs)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        ended = validate_event(event, as_job_names(self.job_names))
        if ended.status is WaitStatus.ERROR:
            raise PollingFailed(f"{self.task_id}: {ended.message}")
        self.log.info("Batch jobs ended: %s", [(job.name, job.state) for job in ended.jobs])
        return [job.summary() for job in ended.jobs]
