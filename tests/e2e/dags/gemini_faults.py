"""The DAGs of the fault tests: one GeminiBatchOperator on an input file given in the run's conf.

With ``kill_worker_after_create`` in the conf, its first try kills its own process (SIGKILL) right
after the create call went through and before the ledger recorded the job: a worker lost at the
worst moment. Retries come at once.

``gemini_faults_waves`` cuts its input into 4 shards and creates one job at a time (waves). With
``kill_worker_at_shard`` (a number, from 1) in the conf, its first try kills its own process right
after that shard's create went through, in whichever wave, resumed or not, creates it.
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


class GeminiBatchOperatorLosingItsWorkerMidWaves(GeminiBatchOperator):
    def execute(self, context):
        self._arm(context)
        return super().execute(context)

    def execute_complete(self, context, event):
        self._arm(context)
        return super().execute_complete(context, event)

    def _arm(self, context):
        shard = context["params"]["kill_worker_at_shard"]
        if not shard or context["ti"].try_number != 1:
            return
        create = self.hook.create_batch_job

        def create_then_die(model, src, display_name, *args, **kwargs):
            job = create(model, src, display_name, *args, **kwargs)
            if f" {shard}/" in display_name:  # display names end "<shard>/<shards> <tag>"
                os.kill(os.getpid(), signal.SIGKILL)
            return job

        self.hook.create_batch_job = create_then_die


with DAG(dag_id="gemini_faults_waves", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
         params={"in": "", "out": "", "kill_worker_at_shard": 0}):
    GeminiBatchOperatorLosingItsWorkerMidWaves(
        task_id="batch",
        input_path="{{ params.in }}",
        output_path="{{ params.out }}",
        prompt_template="Summarize: {text}",
        key_field="id",
        max_requests_per_job=10,
        max_concurrent_jobs=1,
        deferrable=True,
        poll_interval=1.0,
        max_poll_interval=2.0,
        retries=2,
        retry_delay=timedelta(seconds=1),
    )


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
