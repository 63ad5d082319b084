"""Sphinx configuration of the provider's documentation (built with warnings as errors by
``tests/test_docs.py``, and so by the README's test command and CI):

    .venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

Pages are Markdown (MyST); every code example is included from a file that a test runs
(``literalinclude`` of ``tests/system/example_*.py`` or ``dags/``), as Airflow's providers include
their system-test DAGs. The API reference is built from the docstrings (autodoc).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "provider"))
# autodoc imports the modules; Airflow needs a home, never the user's own.
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "docs" / "_build" / "airflow-home"))

project = "airflow-provider-gemini-batch"
author = "The airflow-provider-gemini-batch authors"
copyright = "2026, the airflow-provider-gemini-batch authors"

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

myst_heading_anchors = 3  # [text](page.md#a-heading) links
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the signatures say it; the docstrings give shapes and units
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = "Gemini Batch provider for Apache Airflow"
