"""The DAG of the fault tests: one GeminiBatchOperator on an input file given in the run's conf.

With ``kill_worker_after_create`` in the conf, its first try kills its own process (SIGKILL) right
after the create call went through and before the ledger recorded the job: a worker lost at the
worst moment. Retries come at once.
"""

import os
import signal
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from gemini_batch_provider.operators.batch import GeminiBatchOperator


class GeminiBatchOperatorLosingItsWorker(GeminiBatchOperator):
    def execute(self, context):
        if context["params"]["kill_worker_after_create"] and context["ti"].try_number == 1:
            create = self.hook.create_batch_job

            def create_then_die(*args, **kwargs):
                create(*args, **kwargs)
                os.kill(os.getpid(), signal.SIGKILL)

            self.hook.create_batch_job = create_then_die
        return super().execute(context)


with DAG(dag_id="gemini_faults", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
         params={"in": "", "out": "", "kill_worker_after_create": False}):
    GeminiBatchOperatorLosingItsWorker(
        task_id="batch",
        input_path="{{ params.in }}",
        output_path="{{ params.out }}",
        prompt_template="Summarize: {text}",
        key_field="id",
        deferrable=True,
        poll_interval=1.0,
        max_poll_interval=2.0,
        retries=2,
        retry_delay=timedelta(seconds=1),
    )
