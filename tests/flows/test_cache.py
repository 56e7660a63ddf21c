"""A rerun after a mid-flow failure skips the completed steps (cache) and ends with the same result."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.daily import daily
from flows.runner import RunFailed
from lakehouse.landing import LandingZone
from tests.declared import TPCH as TPCH_SOURCE
from tests.flows.conftest import Landing, content

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
TABLES = ["silver.orders", "silver.lineitem", "gold.fct_sales", "gold.daily_revenue"]


def test_rerun_after_a_failure_skips_completed_steps_and_converges(
    clean_landing: Landing,
    use_home,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a copy of the landing zone whose first lineitem file is unreadable (a column is missing)
    zone = LandingZone(str(tmp_path / "landing"), TPCH_SOURCE)
    broken = clean_landing.zone.files("lineitem", clean_landing.dates)[0]
    for name in ("region", "nation", "part", "supplier", "partsupp", "customer", "orders", "lineitem"):
        for f in clean_landing.zone.files(name, clean_landing.dates):
            data = Path(f.path).read_bytes()
            if f == broken:
                data = data.replace(b"l_comment", b"l_remark", 1)
            zone.write(name, f.batch, Path(f.path).name, data)
    landing = Landing(zone.uri, zone, zone.batches())
    catalog = use_home(landing)
    # the broken file is quarantined as one record; with no quarantine allowed, silver.lineitem fails
    monkeypatch.setenv("LAKEHOUSE_QUARANTINE_MAX_SHARE", "0")
    with pytest.raises(RunFailed, match=r"silver\.lineitem"):
        daily()
    monkeypatch.delenv("LAKEHOUSE_QUARANTINE_MAX_SHARE")
    done = {t: catalog.load_table(t).current_snapshot() for t in ("bronze.orders", "silver.orders")}
    assert all(s is not None and s.summary and s.summary.additional_properties for s in done.values())

    # fix the file; the rerun recomputes only what failed or depends on it
    Path(broken.path.replace(clean_landing.zone.root, zone.root)).write_bytes(Path(broken.path).read_bytes())
    daily()
    assert {t: catalog.load_table(t).current_snapshot() for t in done} == done

    reference = use_home(clean_landing, "reference")
    daily()
    for table_id in TABLES:
        assert content(catalog, table_id).equals(content(reference, table_id)), table_id
