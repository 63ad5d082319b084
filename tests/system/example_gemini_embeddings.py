"""How-to: embeddings, through batch jobs and online (docs/howto/embeddings.md)."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

DATA_DIR = os.environ.get("GEMINI_EXAMPLE_DATA", "/data")

with DAG(dag_id="example_gemini_embeddings", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         params={"data_dir": DATA_DIR}, tags=["example", "gemini"]) as dag:
    # [START howto_operator_gemini_embed]
    from gemini_batch_provider.operators.embed import GeminiBatchEmbedOperator, GeminiConcurrentEmbedOperator

    GeminiBatchEmbedOperator(
        task_id="embed_tickets", input_path="{{ params.data_dir }}/tickets.jsonl", key_field="ticket_id",
        prompt_template="{title}\n{body}",        # the text to embed
        model="gemini-embedding-001", task_type="RETRIEVAL_DOCUMENT", output_dimensionality=768,
        output_path="{{ params.data_dir }}/vectors/{{ run_id }}.jsonl",
        deferrable=True,
    )
    GeminiConcurrentEmbedOperator(
        task_id="embed_tickets_now", input_path="{{ params.data_dir }}/tickets.jsonl", key_field="ticket_id",
        prompt_template="{title}\n{body}", task_type="RETRIEVAL_DOCUMENT", output_dimensionality=768,
        output_path="{{ params.data_dir }}/vectors-now/{{ run_id }}.jsonl",
    )
    # [END howto_operator_gemini_embed]
