"""The Gemini batches page (``gemini_batch_provider.plugins``) on a real Airflow API server under the
FAB auth manager: its JSON refused to anyone not signed in, limited to the DAGs a user may read, and
its XCom values to users who may read the DAG's XComs; and the page in headless Chromium showing a
running job's progress, then the landed runs with their rows, cost and totals, and the "Gemini batch"
views of a deferred task instance and of its DAG run."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from stack import NO_SCHEDULED_RUNS, Stack  # noqa: E402

from airflow import __version__ as airflow_version  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(Version(airflow_version) < Version("3.1"),
                                                  reason="plugin pages need Airflow 3.1+")]

NIGHTLY, IMAGES = "gemini_batch_nightly", "gemini_images"
API = "/gemini-batches/api/batches"
ARTIFACTS = Path(os.environ.get("GEMINI_BATCH_ARTIFACTS", REPO / ".artifacts"))
AI_STUDIO = "https://aistudio.google.com/batches"
CHROMIUM = "/usr/bin/chromium"  # Debian's (scripts/setup.sh installs it)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # Signed-in users only, under the FAB auth manager, whose roles can be limited to some DAGs
    # (not the other tests' all-admins stack); the example DAGs, run only when the test triggers them,
    # and jobs that run 45 s, answering their requests one by one meanwhile: long enough to watch one run
    # through the API, then start a browser and find it still running on the page, on two busy cores.
    users = {"admin": "Admin", "viewer": "Viewer", "images": "ImagesOnly", "noxcom": "ImagesNoXCom"}
    with Stack(tmp_path_factory.mktemp("airflow"), users=users,
               env={**NO_SCHEDULED_RUNS, "AIRFLOW__GEMINI_BATCH__PAGE_REFRESH_SECONDS": "1",
                    "GEMINI_BATCH_POLL_INTERVAL": "1"},
               emulator_args=("--batch-pending-seconds", "1", "--batch-running-seconds", "45")) as running:
        running.wait_for_dag(NIGHTLY)
        running.wait_for_dag(IMAGES)
        running.grant("ImagesOnly", f"DAG:{IMAGES}", "can_read")
        running.grant("ImagesOnly", "XComs", "can_read")
        running.grant("ImagesNoXCom", f"DAG:{IMAGES}", "can_read")  # the DAG, but not its XComs
        yield running


def _row(stack, run_id):
    found = [row for row in stack.get(API)["rows"] if row["run_id"] == run_id]
    return found[0] if found else None


def _get_as(stack, user, path):
    request = urllib.request.Request(f"{stack.api_url}{path}", headers={"Authorization": f"Bearer {stack.token(user)}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_the_data_is_refused_without_a_valid_token_and_the_page_holds_none(stack):
    assert stack.status(API) == 401
    assert stack.status(API, {"Authorization": "Bearer not-a-token"}) == 403
    assert stack.status(API, {"Cookie": "_token=not-a-token"}) == 403
    assert stack.status(API, {"Authorization": f"Bearer {stack.token('viewer')}"}) == 200
    assert stack.status(API, {"Cookie": f"_token={stack.token('viewer')}"}) == 200  # the UI's way
    with urllib.request.urlopen(f"{stack.api_url}/gemini-batches/", timeout=30) as answer:
        page = answer.read().decode()
    assert "api/batches" in page and "emulator" not in page  # the script, no data


def test_the_api_server_sends_the_pages_security_headers_and_refuses_bad_filters(stack):
    viewer = {"Authorization": f"Bearer {stack.token('viewer')}"}
    for path in ("/gemini-batches/", "/gemini-batches/page.js", "/gemini-batches/page.css", API):
        request = urllib.request.Request(f"{stack.api_url}{path}", headers=viewer)
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert "script-src 'self';" in answer.headers["Content-Security-Policy"], path
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert answer.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert [stack.status(f"{API}?{query}", viewer) for query in ("dag_id=%00", "state=%00")] == [422, 422]


def _watch_progress(stack, run_id, timeout=180):
    """The run's row and its job's progress once its ``succeeded`` count has moved while it runs."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = _row(stack, run_id)
        progress = row and row["jobs"] and row["jobs"][0]["progress"]
        if progress and "error" not in progress and progress["state"] == "JOB_STATE_RUNNING":
            seen.append(progress["succeeded"])
            if seen[-1] > seen[0]:
                return row, progress
        time.sleep(1)
    raise AssertionError(f"no running job's progress moved: {seen}")


def test_the_page_shows_a_running_job_moving_then_every_run_with_its_rows_and_cost(stack):
    from playwright.sync_api import expect, sync_playwright

    nightly, images = stack.trigger(NIGHTLY), stack.trigger(IMAGES, conf={"photo_limit": 6})
    row, progress = _watch_progress(stack, nightly)
    assert 0 < progress["percent"] < 100 and progress["requests"] > 300
    assert row["estimated_cost_usd"] > 0 and row["cost_usd"] is None  # the estimate until landed
    assert row["link"] == AI_STUDIO

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(viewport={"width": 1400, "height": 800})
        context.add_cookies([{"name": "_token", "value": stack.token("viewer"), "url": stack.api_url}])
        page = context.new_page()
        page.goto(f"{stack.api_url}/gemini-batches/")
        nightly_row = page.locator("tr[data-test=batch]", has_text=nightly)
        expect(nightly_row.locator("[data-test=progress]")).to_contain_text("RUNNING", timeout=30_000)
        expect(nightly_row.locator("[data-test=cost]")).to_contain_text("est. $")

        for dag_id, run_id in ((NIGHTLY, nightly), (IMAGES, images)):
            assert stack.wait_for_run(dag_id, run_id, timeout=600)["state"] == "success"
        # Now as the UI shows it, in its navigation, to an admin: the UI lists plugin pages to users
        # who may see plugins (FAB's Plugins permission, the Admin role's by default).
        context.add_cookies([{"name": "_token", "value": stack.token("admin"), "url": stack.api_url}])
        page.goto(f"{stack.api_url}/")
        page.get_by_role("button", name="Browse").click()
        page.get_by_role("menuitem", name="Gemini batches").click()
        frame = page.frame_locator("iframe")
        for run_id in (nightly, images):
            landed = frame.locator("tr[data-test=batch]", has_text=run_id)
            expect(landed.locator("[data-test=state]")).to_have_text("success", timeout=30_000)
            expect(landed.locator("[data-test=rows]")).to_contain_text("succeeded")
            expect(landed.locator("[data-test=cost]")).to_contain_text("$")
            expect(landed.get_by_role("link", name="console")).to_have_attribute("href", AI_STUDIO)
        data = stack.get(API)
        rows = {row["run_id"]: row for row in data["rows"]}
        assert rows[nightly]["rows"] > 300 and rows[images]["rows"] == 6
        assert rows[nightly]["cost_usd"] > 0 and rows[images]["cost_usd"] > 0
        expect(frame.locator("[data-test=total-rows] b")).to_have_text(f"{data['totals']['rows']:,}")
        assert data["totals"]["rows"] >= rows[nightly]["rows"] + rows[images]["rows"]
        assert data["cost_per_day"][-1]["cost_usd"] >= rows[nightly]["cost_usd"] + rows[images]["cost_usd"] - 1e-6
        assert "emulator-demo-key" not in json.dumps(data)  # the connection's key, nowhere
        # A user who may read the images DAG only sees its run, and nothing of the nightly DAG.
        limited = _get_as(stack, "images", API)
        assert {row["dag_id"] for row in limited["rows"]} == {IMAGES}
        assert limited["totals"]["rows"] == rows[images]["rows"]
        assert _get_as(stack, "images", f"{API}?dag_id={NIGHTLY}")["rows"] == []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / "gemini-batches-page.png", full_page=True)
        browser.close()



def _watch_in_view(frame, expect):
    """The view's job count, once it has moved while the view was open (the page asks again every
    refresh interval, 1 s in this stack)."""
    done = frame.locator("tr[data-test=batch] [data-test=done]")
    expect(done).to_have_attribute("data-done", re.compile(r"^\d+$"), timeout=60_000)
    first = done.get_attribute("data-done")
    expect(done).not_to_have_attribute("data-done", first, timeout=60_000)
    return int(first), int(done.get_attribute("data-done"))


def test_a_deferred_task_and_its_run_show_their_batch_moving_in_their_own_views(stack, tmp_path):
    """The "Gemini batch" tab of the task instance in the Grid, and of the DAG run, each showing that
    batch alone with its count moving; in the UI's light and dark themes (screenshots in .artifacts);
    nothing for anyone not signed in, nor for a user who may not read the DAG."""
    from urllib.parse import quote, urlencode

    from playwright.sync_api import expect, sync_playwright

    # A folder of its own: no answer stored by an earlier night settles its rows, so a job runs.
    run_id = stack.trigger(NIGHTLY, conf={"output_dir": str(tmp_path)})
    _watch_progress(stack, run_id)  # deferred, its job running and answering
    scoped = f"{API}?{urlencode({'dag_id': NIGHTLY, 'run_id': run_id})}"
    assert stack.status(scoped) == 401
    assert _get_as(stack, "images", scoped)["rows"] == []  # may read another DAG only
    run_page = f"{stack.api_url}/dags/{NIGHTLY}/runs/{quote(run_id, safe='')}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        for theme in ("light", "dark"):
            # The tabs are plugin views, shown to users who may see plugins (FAB: the Admin role).
            context = browser.new_context(viewport={"width": 1366, "height": 900})
            context.add_cookies([{"name": "_token", "value": stack.token("admin"), "url": stack.api_url}])
            context.add_init_script(f"localStorage.setItem('theme', '{theme}')")  # the UI's own theme switch
            page = context.new_page()
            page.goto(f"{run_page}/tasks/summarize_modules")
            page.get_by_role("link", name="Gemini batch", exact=True).click()
            frame = page.frame_locator("iframe")
            expect(frame.locator("html")).to_have_attribute("data-theme", theme, timeout=30_000)
            expect(frame.locator("h1")).to_have_text("Gemini batch of this task")
            expect(frame.locator("tr[data-test=batch]")).to_have_count(1)
            expect(frame.locator("[data-test=task]")).to_contain_text(f"{NIGHTLY} / summarize_modules")
            if theme == "light":  # while the job runs: the count moves in the task's view, then the run's
                first, later = _watch_in_view(frame, expect)
                assert later > first
                page.screenshot(path=ARTIFACTS / "gemini-batch-task-view-light.png")
                page.goto(run_page)
                page.get_by_role("link", name="Gemini batch", exact=True).click()
                frame = page.frame_locator("iframe")
                expect(frame.locator("h1")).to_have_text("Gemini batches of this run", timeout=30_000)
                expect(frame.locator("tr[data-test=batch]")).to_have_count(1)
                first, later = _watch_in_view(frame, expect)
                assert later > first
                page.screenshot(path=ARTIFACTS / "gemini-batch-run-view-light.png")
            else:
                page.screenshot(path=ARTIFACTS / "gemini-batch-task-view-dark.png")
            context.close()
        browser.close()
    assert stack.wait_for_run(NIGHTLY, run_id, timeout=600)["state"] == "success"


def test_values_taken_from_xcom_are_shown_only_to_users_who_may_read_the_dags_xcoms(stack):
    run_id = stack.trigger(IMAGES, conf={"photo_limit": 2})
    assert stack.wait_for_run(IMAGES, run_id, timeout=600)["state"] == "success"
    xcom = f"/api/v2/dags/{IMAGES}/dagRuns/{run_id}/taskInstances/describe_photos/xcomEntries"
    # Airflow's own XCom endpoint refuses one user the DAG's XComs and lets the other read them ...
    assert stack.status(xcom, {"Authorization": f"Bearer {stack.token('noxcom')}"}) == 403
    assert stack.status(xcom, {"Authorization": f"Bearer {stack.token('images')}"}) == 200
    # ... and so does the page, in the rows, the totals and the chart.
    shown = [row for row in _get_as(stack, "images", API)["rows"] if row["run_id"] == run_id]
    withheld = _get_as(stack, "noxcom", API)
    [row] = [row for row in withheld["rows"] if row["run_id"] == run_id]
    assert shown[0]["withheld"] is None and shown[0]["rows"] == 2 and shown[0]["cost_usd"] > 0
    assert row["withheld"] == "no permission to read this DAG's XComs" and row["state"] == "success"
    taken_from_xcom = ("conn_id", "model", "link", "output_path", "submitted_at", "landed_at", "estimated_cost_usd",
                       "cost_usd", "rows", "counts", "tokens")
    assert [row[field] for field in taken_from_xcom] == [None] * len(taken_from_xcom) and row["jobs"] == []
    assert withheld["totals"]["records"] == withheld["totals"]["withheld"] >= 1
    assert (withheld["totals"]["rows"], withheld["totals"]["tokens"], withheld["totals"]["cost_usd"]) == (0, 0, 0)
    assert {day["cost_usd"] for day in withheld["cost_per_day"]} == {0}
