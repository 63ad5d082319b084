"""The main job: the nightly Gemini batch DAG through a real Airflow scheduler and triggerer.

Starts the emulator (unless GEMINI_API_KEY is set: then real Gemini) and Airflow under .demo/airflow.
The nightly DAG is on (unpaused), so the scheduler starts its latest scheduled run at once, as it
would at 02:00: that run is the demo's only one, hence one batch job. The demo waits for it and for
the report DAG it sets off (an Asset), so nothing is stopped in flight, then prints the summary and
the results file, kept under .demo/results/<demo start>/<run id>/ from one demo to the next. Interactive runs
keep Airflow up for the UI until Ctrl-C; others stop it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

from stack import REPO, Stack

DAG_ID = "gemini_batch_nightly"
REPORT_DAG_ID = "gemini_results_report"  # scheduled on the nightly DAG's results Asset
RESULTS = REPO / ".demo" / "results"  # outside the Airflow home, which each demo starts afresh


SAMPLES = ("json", "os", "sqlite3")  # modules everyone knows, shown as sample rows when present


def report(summary: dict, synthetic: bool) -> str:
    """The run as people read it: rows by status and category, cost, three sample rows, the file."""
    rows = [json.loads(line) for line in Path(summary["output_path"]).read_text(encoding="utf-8").splitlines()]
    statuses = Counter(row["status"] for row in rows)
    categories = Counter((row["parsed"] or {}).get("category", "(none)") for row in rows)
    samples = [row for row in rows if row["key"] in SAMPLES] or rows[:3]
    cost, estimate = summary["cost_usd"], summary["estimated_cost_usd"]
    lines = [
        f"{summary['rows']} rows through {', '.join(summary['batch_jobs']) or 'no batch job'} ({summary['model']}):",
        "  by status:   " + ", ".join(f"{status} {count}" for status, count in statuses.most_common()),
        "  by category: " + ", ".join(f"{name} {count}" for name, count in categories.most_common(8))
        + (f", {len(categories) - 8} more" if len(categories) > 8 else ""),
        f"  tokens: {summary['usage'].get('prompt_token_count', 0):,} prompt, "
        f"{summary['usage'].get('candidates_token_count', 0):,} answer, "
        f"{summary['usage'].get('thoughts_token_count', 0):,} thinking (billed as output); cost "
        + (f"${cost:.4f} at the batch price (estimated ${estimate:.4f})" if cost is not None else "unknown"),
        "Sample rows:",
        *(f"  {row['key']:<10} [{(row['parsed'] or {}).get('category')}] "
          f"{textwrap.shorten(str((row['parsed'] or {}).get('summary')), 100)}" for row in samples),
    ]
    if synthetic:
        lines.append("These answers come from the local emulator's synthetic model, not from Gemini: set "
                     "GEMINI_API_KEY for real ones.")
    lines.append(f"Results: {summary['output_path']} (one JSON row per module)")
    return "\n".join(lines)


def main() -> int:
    home = REPO / ".demo" / "airflow"
    shutil.rmtree(home, ignore_errors=True)
    real_key = os.environ.get("GEMINI_API_KEY")
    target = "real Gemini (GEMINI_API_KEY)" if real_key else "the local Gemini API emulator"
    print(f"Starting Airflow under {home}, Gemini target: {target} ...", flush=True)
    started = time.monotonic()
    kwargs = {"api_key": real_key, "use_emulator": False} if real_key else {}
    # A folder per demo: the scheduler names a day's run the same each time, and a results folder
    # shared with an earlier demo would hold that demo's ledger, naming a job of its emulator.
    results = RESULTS / time.strftime("%Y%m%dT%H%M%S")
    stack = Stack(home, env={"GEMINI_BATCH_OUTPUT_DIR": str(results)}, **kwargs).__enter__()
    try:
        stack.wait_for_dag(DAG_ID)
        print(f"Airflow is up ({time.monotonic() - started:.0f} s).", flush=True)
        run_id = stack.wait_for_run_of_type(DAG_ID, "scheduled")
        print(f"The scheduler started {DAG_ID} run {run_id}", flush=True)
        result = stack.wait_for_run(DAG_ID, run_id, on_poll=lambda task, state: print(f"  {task}: {state}", flush=True))
        if result["state"] != "success":
            print(f"Run ended {result['state']}; task log:\n" + stack.task_log(DAG_ID, run_id, "summarize_modules"))
            return 1
        report_run = stack.wait_for_run_of_type(REPORT_DAG_ID, "asset_triggered")
        print(f"{REPORT_DAG_ID} run {report_run} (set off by the results Asset): "
              f"{stack.wait_for_run(REPORT_DAG_ID, report_run)['state']}", flush=True)
        summary = stack.xcom(DAG_ID, run_id, "summarize_modules")
        print(report(summary, synthetic=not real_key))
        [listed] = [row for row in stack.get("/gemini-batches/api/batches")["rows"] if row["run_id"] == run_id]
        jobs = ", ".join(job["name"] for job in listed["jobs"])
        print(f"The Gemini batches page ({stack.api_url}/plugin/gemini-batches) lists {jobs}: {listed['state']}, "
              f"{listed['rows']} rows, ${listed['cost_usd']:.4f}.", flush=True)
        print(f"Wall time: {time.monotonic() - started:.0f} s. Logs: {stack.logs}")
        if sys.stdin.isatty():
            print(f"Airflow keeps running for the UI at {stack.api_url}; press Ctrl-C to stop.", flush=True)
            while True:
                time.sleep(3600)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
