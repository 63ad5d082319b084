"""Apache Airflow provider for the Google Gemini Batch API.

Import the operators from their modules, e.g.
``from gemini_batch_provider.operators.batch import GeminiBatchOperator``; this module stays light
because Airflow imports it (through the ``apache_airflow_provider`` entry point) in every component.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata read by Airflow's ProvidersManager (``airflow providers list``).

    The connection form uses the declarative ``conn-fields`` / ``ui-field-behaviour`` of Airflow 3.2+.
    """
    return {
        "package-name": "airflow-provider-gemini-batch",
        "name": "Google Gemini Batch",
        "description": "Gemini Batch API jobs from Airflow: JSONL built, uploaded, submitted, waited on "
        "in the triggerer, and every row's result landed.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "gemini",
                "hook-class-name": "gemini_batch_provider.hooks.gemini.GeminiHook",
                "hook-name": "Google Gemini",
                "conn-fields": {
                    "base_url": {
                        "label": "Base URL",
                        "schema": {"type": ["string", "null"]},
                        "description": "Leave empty for Google's Gemini API; the emulator's URL to use it.",
                    },
                    "api_version": {
                        "label": "API version",
                        "schema": {"type": ["string", "null"]},
                        "description": "API version; empty: v1beta (Gemini API) or the SDK's default (Vertex AI).",
                    },
                    "vertexai": {
                        "label": "Vertex AI",
                        "schema": {"type": ["boolean", "null"], "default": False},
                        "description": "Use Vertex AI (IAM, Cloud Storage) instead of the Gemini API (API key).",
                    },
                    "project": {
                        "label": "Project (Vertex AI)",
                        "schema": {"type": ["string", "null"]},
                        "description": "Google Cloud project id; Vertex AI only.",
                    },
                    "location": {
                        "label": "Location (Vertex AI)",
                        "schema": {"type": ["string", "null"], "default": "us-central1"},
                        "description": "Vertex AI region, e.g. us-central1; Vertex AI only.",
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "login", "extra"],
                    "relabeling": {"password": "API key, or service-account key JSON (Vertex AI)"},
                    "placeholders": {
                        "password": "Gemini API key from Google AI Studio; for Vertex AI a service-account key's "
                        "JSON, or empty for the machine's default credentials",
                        "project": "my-gcp-project",
                    },
                },
            }
        ],
        "hooks": [{"integration-name": "Google Gemini", "python-modules": ["gemini_batch_provider.hooks.gemini"]}],
        "operators": [
            {
                "integration-name": "Google Gemini",
                "python-modules": [
                    "gemini_batch_provider.operators.batch",
                    "gemini_batch_provider.operators.submit",
                    "gemini_batch_provider.operators.results",
                    "gemini_batch_provider.operators.concurrent",
                    "gemini_batch_provider.operators.embed",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "Google Gemini", "python-modules": ["gemini_batch_provider.sensors.batch"]}
        ],
        "extra-links": ["gemini_batch_provider.links.GeminiBatchJobLink"],
        "triggers": [
            {"integration-name": "Google Gemini", "python-modules": ["gemini_batch_provider.triggers.batch"]}
        ],
        "config": {
            "gemini_batch": {
                "description": "Settings of the Google Gemini Batch provider for the whole deployment.",
                "options": {
                    "prices_file": {
                        "description": "A TOML file of model prices (US dollars per million tokens), of the shape "
                        "of the provider's data/prices.toml; its models add to and override the shipped table, "
                        "and an operator's prices= wins over both. Empty: the shipped table only.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/opt/airflow/gemini-prices.toml",
                        "default": "",
                    },
                    "page_refresh_seconds": {
                        "description": "How long the Gemini batches page keeps a running job's progress before "
                        "asking the API again: one request per job per this many seconds, whatever the number "
                        "of viewers.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "15",
                        "default": "15",
                    },
                },
            },
        },
    }
