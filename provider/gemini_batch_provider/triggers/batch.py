"""GeminiBatchJobTrigger: waits in the triggerer until every given batch job has ended.

It only waits: it never creates jobs (duplicates of a trigger may run at once) and cancels them
only when a user kills the deferred task that created them (``cancel_on_kill``). Airflow 3.3 calls
``on_kill`` then, and also on a triggerer that loses the trigger to another (a triggerer whose
heartbeat was late), though the task still waits: so the jobs are cancelled only once the task
is no longer deferred. It carries the connection id, never the key, in
its kwargs. The wait itself is ``core.waiting``'s engine over the hook's async client: one request
per poll of a running job, transient errors ridden out.

It never blocks the triggerer's event loop. This module imports only Airflow's trigger base; the
SDK (~300 modules), the hook, the backends, the TLS context and the client are loaded in a worker
thread when the first trigger runs, and a poll's answer is parsed as plain JSON.
"""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from gemini_batch_provider.core.backend import BatchBackend


@functools.cache
def _import_api() -> None:
    """Import the hook's module (and with it the SDK), the backends and the waiting engine, once per process.

    A full garbage collection scans every object in the process while holding the GIL (~120 ms in
    a triggerer), which stalls the event loop as surely as work done on it, and the SDK's imports
    allocate enough to set one off. So the collector is paused while they run, and what exists
    afterwards (modules, classes, Airflow's own long-lived objects) is moved out of its reach with
    ``gc.freeze()``, as Airflow does before forking (https://docs.python.org/3/library/gc.html#gc.freeze).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        import gemini_batch_provider.backends.gemini_api
        import gemini_batch_provider.backends.vertex_ai
        import gemini_batch_provider.core.waiting
        import gemini_batch_provider.hooks.gemini  # noqa: F401
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


async def load_backend(gemini_conn_id: str) -> BatchBackend:
    """The connection's backend (``core.backend``) with its async client ready, its modules and the
    waiting engine's imported in a worker thread: they cost ~0.5 s of CPU the first time in a process."""
    # Once imported, no thread hop: ten thousand triggers resumed together would queue ten thousand.
    if not _import_api.cache_info().currsize:
        await asyncio.to_thread(_import_api)
    from gemini_batch_provider.hooks.gemini import GeminiHook  # imported above, off the loop

    return await GeminiHook(gemini_conn_id).abackend()


class GeminiBatchJobTrigger(BaseTrigger):
    """Poll batch jobs until all have ended; yield one event.

    Event payload (``core.vocabulary.WaitEvent``): ``{"status": "ended" | "deadline" | "error" | "room",
    "message": str, "jobs": [{"name", "state", "output_file"}]}``: ``ended`` when every job is in a
    terminal state (whichever), ``deadline`` when ``deadline`` passed first (the jobs' last states),
    ``error`` when polling failed, ``room`` when a ``wave``'s wait ended. ``execute_complete`` reads
    it with ``validate_event``.

    :param job_names: batch job names, ``batches/<id>``.
    :param gemini_conn_id: connection to poll with.
    :param poll_interval: seconds before the second poll; each next wait is 1.5 times longer.
    :param max_poll_interval: longest wait between polls, seconds.
    :param max_poll_errors: transient poll errors tolerated in a row before giving up.
    :param deadline: Unix time (seconds) after which it stops waiting and yields ``deadline``;
        what to do with unfinished jobs is the task's call.
    :param cancel_on_kill: cancel the unfinished jobs when a user kills the deferred task (mark
        failed, clear, mark succeeded): for the task that created them, never for a sensor.
    :param wave: shards wait for room in the project's batch quota: yield ``room`` as soon as one
        job has ended, or at ``wake_at`` (Unix time), for the task to create the next wave.
    :param wake_at: see ``wave``; None: only when a job ends.
    """

    def __init__(self, job_names: list[str], gemini_conn_id: str, poll_interval: float = 30.0,
                 max_poll_interval: float = 300.0, max_poll_errors: int = 10, deadline: float | None = None,
                 cancel_on_kill: bool = False, wave: bool = False, wake_at: float | None = None) -> None:
        super().__init__()
        self.wave, self.wake_at = wave, wake_at
        self.cancel_on_kill = cancel_on_kill
        self.job_names = list(job_names)
        self.gemini_conn_id = gemini_conn_id
        self.poll_interval = poll_interval
        self.max_poll_interval = max(poll_interval, max_poll_interval)
        self.max_poll_errors = max_poll_errors
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_names": self.job_names,
                "gemini_conn_id": self.gemini_conn_id,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "max_poll_errors": self.max_poll_errors,
                "deadline": self.deadline,
                "cancel_on_kill": self.cancel_on_kill,
                "wave": self.wave,
                "wake_at": self.wake_at,
            },
        )

    async def on_kill(self) -> None:
        """The user killed the deferred task: cancel its unfinished jobs (``cancel_on_kill`` only),
        unless the task is still deferred (the trigger went to another triggerer)."""
        if not self.cancel_on_kill:
            return
        state = await self._task_state()
        if state == "deferred":
            self.log.info("The trigger moved to another triggerer; the task still waits, so its jobs go on.")
            return
        backend = await load_backend(self.gemini_conn_id)
        from gemini_batch_provider.core.waiting import cancel_unfinished  # imported by load_backend, off the loop

        await cancel_unfinished(self.job_names, backend, self.log, "Task killed")

    async def _task_state(self) -> str | None:
        """The state of the task instance this trigger waits for, asked of the Execution API (None
        when unknown); in a thread, as the SDK's call blocks."""
        ti = getattr(self, "task_instance", None)  # set by the triggerer
        if ti is None:
            return None
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = await asyncio.to_thread(RuntimeTaskInstance.get_task_states, dag_id=ti.dag_id,
                                         map_index=ti.map_index, task_ids=[ti.task_id], run_ids=[ti.run_id])
        name = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
        return states.get(ti.run_id, {}).get(name)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        backend = await load_backend(self.gemini_conn_id)
        from gemini_batch_provider.core.waiting import WaitPolicy, wait_logged  # imported by load_backend, off the loop

        policy = WaitPolicy(self.poll_interval, self.max_poll_interval, self.max_poll_errors, self.deadline,
                            self.wave, self.wake_at)
        event = await wait_logged(self.job_names, backend, policy, self.log)
        yield TriggerEvent(event.payload())

