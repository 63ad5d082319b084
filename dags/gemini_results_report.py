"""Downstream of the nightly batch: a report of its results, run whenever they land.

Scheduled on the Asset ``gemini_module_summaries`` that ``gemini_batch_nightly`` updates. Each asset
event's ``extra`` is the batch task's summary, so this DAG reads the results of the very runs that
triggered it (``output_path``, read with ``gemini_batch_provider.results.read_results``), counts
the modules per category from each row's ``parsed`` answer, and writes ``report.json`` next to each
results file.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pendulum
from airflow.sdk import Asset, dag, task

MODULE_SUMMARIES = Asset("gemini_module_summaries")


@dag(schedule=[MODULE_SUMMARIES], start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
     tags=["gemini", "report"], doc_md=__doc__)
def gemini_results_report():
    # [START howto_asset_consumer]
    @task(inlets=[MODULE_SUMMARIES])
    def report(triggering_asset_events=None) -> list[dict]:
        """Count the modules of each category, for each results file the triggering events name
        (several runs may land before this one starts); each report is also written as ``report.json``."""
        from gemini_batch_provider.results import read_results

        reports = []
        for event in triggering_asset_events[MODULE_SUMMARIES]:
            summary = event.extra  # the batch task's summary: output_path, rows, counts, cost_usd, ...
            categories: Counter[str] = Counter()
            for row in read_results(summary):  # streamed from wherever the task wrote them
                categories[row["parsed"]["category"] if row["status"] == "succeeded" else row["status"]] += 1
            report = {"results": summary["output_path"], "rows": summary["rows"], "cost_usd": summary["cost_usd"],
                      "categories": dict(categories.most_common())}
            Path(summary["output_path"]).with_name("report.json").write_text(json.dumps(report, indent=2))
            reports.append(report)
        return reports
    # [END howto_asset_consumer]

    report()


gemini_results_report()
