"""The provider's errors, in three families that each say what the user must do.

- ``InputError``: bad input or settings (a parameter, a row, a model, a connection), found before
  anything is uploaded or billed; the message names the row or field and the fix. No retry helps,
  so it fails the task at once (``AirflowFailException``). ``BudgetExceeded`` is one: the input
  would cost more than allowed; and ``MediaRejected``: a medium the Files API took but could not process.
- ``JobError``: the API or a batch job let the run down (a job ended FAILED, CANCELLED or EXPIRED,
  polling failed, rows the API never answered, jobs not ended yet, a wait event that can't be
  read). What the jobs produced has landed; a retry may help (``AirflowException``, so Airflow's
  retries apply).
- ``LedgerError``: the ledger that records what a task instance created can't be trusted (not
  readable, or of a version this release does not know). Going on could create and pay for the
  same jobs twice, so it fails the task at once and names the file (``AirflowFailException``).

With Airflow installed, each family is a subclass of that Airflow exception; without it (the core
in a notebook) the same names subclass plain exceptions, so the core imports without Airflow.
"""

from __future__ import annotations

try:
    from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
except ImportError:  # the core used without Airflow

    class AirflowException(Exception):  # type: ignore[no-redef]
        """Stands in for Airflow's, without Airflow."""

    class AirflowFailException(AirflowException):  # type: ignore[no-redef]
        """Stands in for Airflow's, without Airflow."""


class InputError(AirflowFailException, ValueError):
    """Bad input, found before anything is uploaded or billed; the message names the row and the fix."""


class BudgetExceeded(InputError):
    """The estimated cost is over ``max_cost_usd`` (or the model has no price to check it with);
    nothing was sent or billed."""


class MediaRejected(InputError):
    """The Files API took a medium's upload but could not process it (its state is not ACTIVE): the
    medium is bad in a way only the API could tell, and no retry helps."""


class JobError(AirflowException):
    """A batch job or the API let the run down; what was produced has landed, and a retry may help."""


class JobEndedBadly(JobError):
    """A batch job ended FAILED, CANCELLED or EXPIRED, or rows of a job that succeeded have no answer."""


class PollingFailed(JobError):
    """Waiting on batch jobs failed: a permanent error, or too many transient ones in a row."""


class JobsNotEnded(JobError):
    """Results were asked of batch jobs that have not ended yet."""


class RowsUnanswered(JobError):
    """Rows ran out of attempts on transient errors online; they landed ``failed``."""


class AnswerInvalid(JobError, ValueError):
    """An answer that is not the JSON ``response_schema`` asks for; its row lands ``invalid_output``."""


class WaitEventError(JobError, ValueError):
    """An ``execute_complete`` event that no wait yields (not its shape, or about other jobs)."""


class LedgerError(AirflowFailException):
    """The ledger can't be read or has an unknown version; the message names the file and the way out."""
