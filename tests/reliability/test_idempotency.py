"""Idempotency and determinism: reruns and backfills over loaded dates change nothing, duplicate nothing.

Reruns go through the step cache (a cached step commits nothing) and, with
``PREFECT_TASKS_REFRESH_CACHE=true``, recompute and recommit every step: the content must be the
same either way. A second lakehouse built from the same landing zone with another history (other
chunks, other runs) must hold the same content, surrogate keys and derived values included.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lakehouse.landing import LandingZone
from lakehouse.maintenance import rollback_to_snapshot
from tests.reliability.conftest import PENDING, START, Baseline
from tests.reliability.harness import Home, contents, duplicated_keys, snapshot_ids

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REFRESH = {"PREFECT_TASKS_REFRESH_CACHE": "true"}


def _assert_same(home: Home, baseline: Baseline, what: str) -> None:
    with home.catalog() as catalog:
        got = contents(catalog)
    assert sorted(got) == sorted(baseline.post), what
    differ = [t for t, frame in baseline.post.items() if not got[t].equals(frame)]
    assert not differ, f"{what}: content differs in {differ}"
    duplicated = {t: n for t, frame in got.items() if (n := duplicated_keys(t, frame))}
    assert not duplicated, f"{what}: duplicated keys {duplicated}"


def test_reference_lakehouse_has_no_duplicate_keys(baseline: Baseline) -> None:
    for states in (baseline.pre, baseline.post):
        duplicated = {t: n for t, frame in states.items() if (n := duplicated_keys(t, frame))}
        assert not duplicated
    assert baseline.post["silver.orders"].height > baseline.pre["silver.orders"].height


def test_rerunning_a_date_and_backfilling_loaded_dates_change_nothing(baseline: Baseline) -> None:
    home = baseline.restore_post()
    with home.catalog() as catalog:
        before = snapshot_ids(catalog)

    # nothing pending: nothing committed
    home.run_ok("flows.daily")
    with home.catalog() as catalog:
        assert snapshot_ids(catalog) == before

    # the same date again, through the step cache
    home.run_ok("flows.daily", "--date", PENDING[-1].isoformat())
    _assert_same(home, baseline, "rerun of one date")

    # a backfill over loaded dates, every step recomputed and recommitted
    home.run_ok(
        "flows.backfill", "--start", PENDING[0].isoformat(), "--end", PENDING[-1].isoformat(), extra=REFRESH
    )
    _assert_same(home, baseline, "backfill over loaded dates, cache refreshed")
    with home.catalog() as catalog:
        after = snapshot_ids(catalog)
    rewritten = [t for t in ("silver.orders", "silver.customer", "gold.fct_sales") if after[t] != before[t]]
    assert len(rewritten) == 3, "the refreshed backfill must have recomputed and recommitted"


def test_a_rerun_after_a_rollback_recomputes_the_rolled_back_steps(baseline: Baseline) -> None:
    home = baseline.restore_post()
    pre_orders = baseline.pre_snapshots["silver.orders"]
    assert pre_orders is not None
    with home.catalog() as catalog:
        rollback_to_snapshot(catalog.load_table("silver.orders"), pre_orders)
        assert contents(catalog, ["silver.orders"])["silver.orders"].equals(baseline.pre["silver.orders"])

    # The same batches as the reference run: every step's cache key is unchanged, silver.orders' too,
    # but its cached snapshot is no longer on main, so it runs again (and gold, whose input changed).
    run = home.run_ok("flows.backfill", "--start", PENDING[0].isoformat(), "--end", PENDING[-1].isoformat())
    assert re.search(r"silver\.orders: snapshot \d+ of the cached result is no longer on main", run.output)
    _assert_same(home, baseline, "rerun after a rollback")


def test_an_independent_lakehouse_with_another_history_has_the_same_content(
    baseline: Baseline, reliability_root: Path, landing: LandingZone, api_url: str
) -> None:
    # The baseline loaded 28 days in one chunk, then 3 in a daily run; this one 31 days in chunks of 16.
    home = Home(reliability_root / "independent", landing.uri, api_url)
    home.run_ok(
        "flows.backfill", "--start", START.isoformat(), "--end", PENDING[-1].isoformat(), "--chunk-days", "16"
    )
    _assert_same(home, baseline, "independent lakehouse")
