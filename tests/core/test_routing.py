"""How ``mode="auto"`` picks a path (``core.plan.Routing.route``): Standard, Flex or the Batch API."""

from __future__ import annotations

import pytest

from gemini_batch_provider.core.plan import FLEX_REQUEST_TIMEOUT_S, Routing


@pytest.mark.parametrize(("rows", "deadline_s", "over_budget", "path"), [
    (50, None, False, "online"),  # small: Standard, in seconds
    (50, None, True, "batch"),  # small, but Standard is over the budget, and no deadline
    (50, 3600, True, "flex"),  # ... with a deadline Flex meets: half price, within it
    (5000, None, False, "batch"),  # large, no deadline: the Batch API
    (128, 3600, False, "flex"),  # 32 calls in flight x 4 calls of 900 s within the hour
    (129, 3600, False, "batch"),  # one row more than Flex finishes by then
    (1000, 12 * 3600, False, "flex"),  # 32 x 48 = 1536 within twelve hours
    (1000, 24 * 3600, False, "batch"),  # a deadline the Batch API's target meets: no worker held for a day
])
def test_auto_picks_the_cheapest_path_that_meets_the_need(rows, deadline_s, over_budget, path):
    routing = Routing(mode="auto", online_threshold=100, deadline_s=deadline_s)
    chosen, why = routing.route(rows, concurrency=32, standard_over_budget=over_budget)
    assert chosen == path and why.startswith(f"auto: {rows} rows")
    if path == "flex":
        assert f"{32 * int(deadline_s // FLEX_REQUEST_TIMEOUT_S)} rows at most" in why and "batch price" in why


@pytest.mark.parametrize("mode", ["batch", "online", "flex"])
def test_a_mode_named_is_taken_whatever_the_rows(mode):
    assert Routing(mode=mode).route(10**6, concurrency=32) == (mode, f"mode {mode}")


def test_a_flex_call_may_stay_open_for_minutes_unless_told_otherwise():
    import dataclasses

    from gemini_batch_provider.core.plan import OnlineSettings

    assert OnlineSettings().timeout_s == 120 and OnlineSettings(service_tier="priority").timeout_s == 120
    assert OnlineSettings(service_tier="flex").timeout_s == FLEX_REQUEST_TIMEOUT_S == 900
    assert dataclasses.replace(OnlineSettings(), service_tier="flex").timeout_s == 900  # as auto routes to Flex
    assert OnlineSettings(service_tier="flex", request_timeout_s=30).timeout_s == 30
