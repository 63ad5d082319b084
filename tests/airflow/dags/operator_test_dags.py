"""DAGs for the operator tests: each operator on a JSONL file and an output path given in the run's conf."""

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, task
from pydantic import BaseModel, Field

from gemini_batch_provider.operators.batch import GeminiBatchOperator
from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator
from gemini_batch_provider.operators.embed import GeminiBatchEmbedOperator, GeminiConcurrentEmbedOperator
from gemini_batch_provider.operators.results import GeminiBatchResultsOperator
from gemini_batch_provider.operators.submit import GeminiSubmitBatchOperator
from gemini_batch_provider.sensors.batch import GeminiBatchJobSensor

# Every task reads {{ params.in }} and writes {{ params.out }}, with the same prompt.
COMMON = {
    "input_path": "{{ params.in }}",
    "output_path": "{{ params.out }}",
    "prompt_template": "Summarize: {text}",
    "key_field": "id",
}


class Summary(BaseModel):
    """The structured output of the schema tests: a summary of 40 characters at most."""

    summary: str = Field(max_length=40)
    words: int


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1), params={"in": "", "out": ""})


class LoseWorkerAfterCreate(GeminiBatchOperator):
    """Fails its first try right after the create call went through and before the ledger recorded
    the job: what a worker lost at that moment leaves behind."""

    def execute(self, context):
        if context["ti"].try_number == 1:
            create = self.hook.create_batch_job

            def create_then_lose(*args, **kwargs):
                job = create(*args, **kwargs)
                raise RuntimeError(f"worker lost right after creating {job.name}")

            self.hook.create_batch_job = create_then_lose
        return super().execute(context)


for dag_id, options in (
    ("gemini_op_deferrable", {"deferrable": True}),
    ("gemini_op_polling", {"deferrable": False}),
    ("gemini_op_auto", {"mode": "auto", "online_threshold": 5}),
    ("gemini_op_deadline", {"deadline": 1.0}),
    ("gemini_op_deadline_cancel", {"deadline": 1.0, "on_deadline": "cancel"}),
    ("gemini_op_rerun", {"rerun_failed_online": True}),
    ("gemini_op_sharded", {"max_requests_per_job": 3}),
    ("gemini_op_vertex", {"max_requests_per_job": 4, "gcs_staging_uri": "gs://bkt/staging"}),
    ("gemini_op_budget", {"max_cost_usd": 0.00001}),  # a hundredth of a cent
    ("gemini_op_storage", {"storage_conn_id": "aws_moto"}),  # s3:// through this connection
    ("gemini_op_schema", {"response_schema": Summary}),
    ("gemini_op_asset", {"outlets": [Asset("gemini_test_results")], "inlets": [Asset("gemini_test_input")]}),
    ("gemini_op_thinking", {"model": "gemini-3-flash-preview", "generation_config": {
        "thinking_config": {"thinking_level": "low", "include_thoughts": True}}}),
):
    with _dag(dag_id):
        GeminiBatchOperator(task_id="batch", poll_interval=0.2, **COMMON, **options)

with _dag("gemini_op_retry"):
    LoseWorkerAfterCreate(task_id="batch", poll_interval=0.2, retries=1, retry_delay=timedelta(0), **COMMON)

with _dag("gemini_op_online"):
    GeminiConcurrentGenerateOperator(task_id="online", concurrency=4, rpm=600, max_attempts=20, **COMMON)

with _dag("gemini_op_online_schema"):
    GeminiConcurrentGenerateOperator(task_id="online", response_schema=Summary.model_json_schema(), **COMMON)

with _dag("gemini_op_granular"):
    submit = GeminiSubmitBatchOperator(task_id="submit", max_requests_per_job=4, **COMMON)
    wait = GeminiBatchJobSensor(task_id="wait", job_names=submit.output, poke_interval=0.2, deferrable=True)
    land = GeminiBatchResultsOperator(task_id="land", job_names=submit.output, max_requests_per_job=4, **COMMON)
    submit >> wait >> land

with _dag("gemini_op_granular_input_gone"):
    # The input is removed once the jobs have ended: landing reads each key's job from the ledger.
    submit = GeminiSubmitBatchOperator(task_id="submit", max_requests_per_job=3, **COMMON)
    wait = GeminiBatchJobSensor(task_id="wait", job_names=submit.output, poke_interval=0.2, deferrable=True)

    @task
    def remove_input(params=None):
        os.remove(params["in"])

    land = GeminiBatchResultsOperator(task_id="land", job_names=submit.output, **COMMON)
    submit >> wait >> remove_input() >> land

with _dag("gemini_op_embed"):
    GeminiBatchEmbedOperator(task_id="embed", poll_interval=0.2, task_type="SEMANTIC_SIMILARITY",
                             output_dimensionality=64, **{**COMMON, "prompt_template": "{text}"})

with _dag("gemini_op_embed_online"):
    GeminiConcurrentEmbedOperator(task_id="embed", output_dimensionality=64, **{**COMMON, "prompt_template": "{text}"})

# Media rows: {"id", "question", "photo"} records; photos over 200 kB are uploaded, the rest inline.
MEDIA = {**COMMON, "prompt_template": "{question}\n{photo}", "media_fields": ["photo"],
         "inline_media_max_bytes": 200_000}

with _dag("gemini_op_media"):
    GeminiBatchOperator(task_id="batch", poll_interval=0.2, **MEDIA)

with _dag("gemini_op_media_online"):
    GeminiConcurrentGenerateOperator(task_id="online", **MEDIA)
