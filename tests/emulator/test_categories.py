"""The emulator answers a choice of values by meaning: the nightly DAG's categories, labelled by chapter."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from google.genai import types

pytestmark = pytest.mark.integration

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "category_accuracy.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("category_accuracy", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_nightly_dags_categories_match_the_library_reference_for_80_percent_of_a_labelled_sample(client):
    figures = _benchmark().measure(client)
    assert figures["modules"] >= 60
    assert figures["accuracy"] >= 0.8, figures["misses"]


CHOICE = {
    "type": "object",
    "properties": {"kind": {"anyOf": [
        {"type": "string", "enum": ["alpha"], "description": "Compressing and decompressing archives of files."},
        {"type": "string", "enum": ["beta"], "description": "Talking to other machines over network sockets."},
    ]}},
}


@pytest.mark.parametrize(("prompt", "kind"), [
    ("Module: alpha\n\nOpen network sockets to other machines.", "beta"),  # the label names an option: no matter
    ("Module: beta\n\nOpen network sockets to other machines.", "beta"),
    ("Module: beta\n\nRead and write compressed archives.", "alpha"),
    ("Module: beta\n\n>>> archive.compress(files)\n\nSend it over the network.", "beta"),  # prose, not code
])
def test_a_choice_is_answered_from_what_each_option_means_in_the_prompts_prose(client, prompt, kind):
    config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=CHOICE)
    response = client.models.generate_content(model="gemini-2.5-flash", contents=prompt, config=config)
    assert json.loads(response.text) == {"kind": kind}
