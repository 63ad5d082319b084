"""The one waiting engine, driven by scripted polls: backoff, errors in a row, deadline, cancel."""

from __future__ import annotations

import logging
import time

import pytest
from google.genai import errors

from gemini_batch_provider.core.jobs import JobStatus, WaitEvent, validate_event
from gemini_batch_provider.core.vocabulary import JobState, WaitStatus
from gemini_batch_provider.core.waiting import Polled, PollFailed, WaitPolicy, cancel_unfinished, wait_for_jobs


class Script:
    """A ``JobWatch`` that answers polls from a list of states (or exceptions) per job, and records
    the waits asked for and the cancels."""

    def __init__(self, **states: list[object]) -> None:
        self.states = {f"batches/{name}": list(answers) for name, answers in states.items()}
        self.polls: list[str] = []
        self.waits: list[float] = []
        self.cancelled: list[str] = []

    async def ajob_status(self, name: str) -> JobStatus:
        self.polls.append(name)
        answer = self.states[name].pop(0) if len(self.states[name]) > 1 else self.states[name][0]
        if isinstance(answer, Exception):
            raise answer
        return JobStatus(name, str(answer), f"files/out-{name}" if answer == JobState.SUCCEEDED else None)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def acancel(self, name: str) -> None:
        self.cancelled.append(name)
        self.states[name] = [JobState.CANCELLED]


async def _run(script: Script, names: list[str], policy: WaitPolicy) -> list[object]:
    return [step async for step in wait_for_jobs(names, script, policy, sleep=script.sleep)]


def _unavailable() -> errors.ServerError:
    return errors.ServerError(503, {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})


async def test_polls_back_off_by_half_up_to_the_maximum_with_jitter():
    script = Script(a=[JobState.RUNNING] * 7 + [JobState.SUCCEEDED])
    steps = await _run(script, ["batches/a"], WaitPolicy(poll_interval=1.0, max_poll_interval=3.0))
    assert 0 <= script.waits[0] <= 0.25  # a random start within a quarter interval
    for wait, expected in zip(script.waits[1:], [1.0, 1.5, 2.25, 3.0, 3.0, 3.0, 3.0], strict=True):
        assert 0.75 * expected <= wait <= 1.25 * expected
    assert len(script.waits) == 8 and len(set(script.waits)) == 8  # jittered: no two waits alike
    assert steps[-1] == WaitEvent(WaitStatus.ENDED, "all batch jobs succeeded",
                                  (JobStatus("batches/a", "JOB_STATE_SUCCEEDED", "files/out-batches/a"),))


async def test_an_ended_job_is_not_polled_again_and_bad_endings_are_named():
    script = Script(a=[JobState.FAILED], b=[JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED])
    steps = await _run(script, ["batches/a", "batches/b"], WaitPolicy(poll_interval=1.0))
    assert script.polls == ["batches/a", "batches/b", "batches/b", "batches/b"]
    assert [type(step) for step in steps] == [Polled] * 4 + [WaitEvent]
    assert steps[-1].status is WaitStatus.ENDED and steps[-1].message == "batch jobs did not succeed: batches/a " \
        "JOB_STATE_FAILED"


async def test_transient_errors_are_ridden_out_up_to_the_limit_and_reset_by_a_good_poll():
    flaky = [_unavailable(), _unavailable(), JobState.RUNNING, _unavailable(), _unavailable(), JobState.SUCCEEDED]
    steps = await _run(Script(a=flaky), ["batches/a"], WaitPolicy(poll_interval=1.0, max_poll_errors=2))
    assert [s.errors_in_row for s in steps if isinstance(s, PollFailed)] == [1, 2, 1, 2]
    assert steps[-1].status is WaitStatus.ENDED

    steps = await _run(Script(a=[_unavailable()]), ["batches/a"], WaitPolicy(poll_interval=1.0, max_poll_errors=2))
    assert steps[-1].status is WaitStatus.ERROR and "3 errors in a row" in steps[-1].message


async def test_a_permanent_error_ends_the_wait_at_once():
    missing = errors.ClientError(404, {"error": {"code": 404, "message": "no such batch", "status": "NOT_FOUND"}})
    steps = await _run(Script(a=[missing]), ["batches/a"], WaitPolicy(poll_interval=1.0, max_poll_errors=5))
    assert len(steps) == 1 and steps[0].status is WaitStatus.ERROR and "404" in steps[0].message
    assert steps[0].jobs == (JobStatus("batches/a", "JOB_STATE_UNSPECIFIED"),)


async def test_the_deadline_caps_the_wait():
    script = Script(a=[JobState.RUNNING, JobState.SUCCEEDED])
    policy = WaitPolicy(poll_interval=600.0, max_poll_interval=600.0, deadline=time.time() + 5)
    steps = await _run(script, ["batches/a"], policy)
    assert 4 < script.waits[1] <= 5  # the wait after the first poll is cut to the time left, not ~600 s
    assert steps[-1].status is WaitStatus.ENDED


async def test_a_passed_deadline_ends_the_wait_after_one_poll():
    script = Script(a=[JobState.PENDING])
    steps = await _run(script, ["batches/a"], WaitPolicy(poll_interval=1.0, deadline=time.time() - 1))
    assert script.polls == ["batches/a"]
    assert steps[-1] == WaitEvent(WaitStatus.DEADLINE, "1 batch jobs unfinished at the deadline",
                                  (JobStatus("batches/a", "JOB_STATE_PENDING"),))


async def test_cancel_unfinished_cancels_only_what_has_not_ended():
    script = Script(a=[JobState.SUCCEEDED], b=[JobState.RUNNING])
    log = logging.getLogger(__name__)
    statuses = await cancel_unfinished(["batches/a", "batches/b"], script, log, "Deadline passed", settle_seconds=5)
    assert script.cancelled == ["batches/b"]
    assert [s.state for s in statuses] == [JobState.SUCCEEDED, JobState.CANCELLED]


@pytest.mark.parametrize("event, fix", [
    ("ended", "must be a dict"),
    ({"status": "done", "message": "", "jobs": []}, "unknown wait event status 'done'"),
    ({"status": "ended", "message": "", "jobs": [{"name": "batches/a"}]}, "must be {name, state, output_file}"),
])
def test_validate_event_refuses_what_no_wait_yields(event, fix):
    with pytest.raises(ValueError, match=fix.replace("{", r"\{").replace("}", r"\}")):
        validate_event(event)


def test_validate_event_refuses_an_event_about_other_jobs():
    event = {"status": "ended", "message": "", "jobs": [{"name": "batches/b", "state": "X", "output_file": None}]}
    with pytest.raises(ValueError, match=r"about jobs \['batches/b'\], not the task's \['batches/a'\]"):
        validate_event(event, ["batches/a"])
    assert [job.summary() for job in validate_event(event, ["batches/b"]).jobs] == event["jobs"]
