"""The main job: the nightly Gemini batch DAG through a real Airflow scheduler and triggerer.

Starts the emulator (unless GEMINI_API_KEY is set: then real Gemini) and Airflow under .demo/,
triggers ``gemini_batch_nightly`` through the REST API, waits for it, and prints the summary, the
results file and the UI address. Interactive runs keep Airflow up until Ctrl-C; others stop it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from stack import REPO, Stack

DAG_ID = "gemini_batch_nightly"


def main() -> int:
    home = REPO / ".demo" / "airflow"
    shutil.rmtree(home, ignore_errors=True)
    real_key = os.environ.get("GEMINI_API_KEY")
    target = "real Gemini (GEMINI_API_KEY)" if real_key else "the local Gemini API emulator"
    print(f"Starting Airflow under {home}, Gemini target: {target} ...", flush=True)
    started = time.monotonic()
    kwargs = {"api_key": real_key, "use_emulator": False} if real_key else {}
    stack = Stack(home, **kwargs).__enter__()
    try:
        stack.wait_for_dag(DAG_ID)
        print(f"Airflow is up ({time.monotonic() - started:.0f} s); UI: {stack.api_url}", flush=True)
        run_id = stack.trigger(DAG_ID)
        print(f"Triggered {DAG_ID} run {run_id}", flush=True)
        result = stack.wait_for_run(DAG_ID, run_id, on_poll=lambda task, state: print(f"  {task}: {state}", flush=True))
        if result["state"] != "success":
            print(f"Run ended {result['state']}; task log:\n" + stack.task_log(DAG_ID, run_id, "summarize_modules"))
            return 1
        summary = stack.xcom(DAG_ID, run_id, "summarize_modules")
        print("Summary:", json.dumps(summary, indent=2))
        rows = Path(summary["output_path"]).read_text(encoding="utf-8").splitlines()
        print(f"Results: {summary['output_path']} ({len(rows)} rows); first row:\n  {rows[0]}")
        print(f"Wall time: {time.monotonic() - started:.0f} s. UI: {stack.api_url} (logs: {stack.logs})")
        if sys.stdin.isatty():
            print("Airflow keeps running for the UI; press Ctrl-C to stop.", flush=True)
            while True:
                time.sleep(3600)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
