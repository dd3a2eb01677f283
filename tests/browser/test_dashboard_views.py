"""The dashboard's views in headless Chromium at desktop (1400 px) and phone (420 px) width:
the timeline, filters applied to the alerts, paged tables, the event and alert pages, the key
lifecycle, no horizontal overflow, hostile strings as text. Screenshots go to
`$HSMAUDIT_SCREENSHOTS` (or a temporary folder) for people to look at."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from .conftest import XSS_HSM, XSS_USER, Dashboard

pytestmark = pytest.mark.browser

WIDTHS = {"desktop": 1400, "phone": 420}


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("HSMAUDIT_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(params=list(WIDTHS))
def page(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": WIDTHS[request.param], "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    page.width_name = request.param
    yield page
    context.close()


def shoot(page: Any, shots: Path, name: str) -> Path:
    path = shots / f"{name}-{page.width_name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def assert_no_horizontal_overflow(page: Any) -> None:
    width = page.evaluate("() => document.documentElement.clientWidth")
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= width, f"page is {scroll} px wide in a {width} px window"
    wide = page.evaluate(
        "() => [...document.querySelectorAll('section.panel')]"
        ".filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.id)"
    )
    assert wide == []


def sql_all(dashboard: Dashboard, query: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(dashboard.db) as connection:
        return connection.execute(query, params).fetchall()


def test_overview_shows_the_timeline_keys_and_paged_alerts(
    page: Any, dashboard: Dashboard, shots: Path
) -> None:
    page.goto(dashboard.url + "/")
    shoot(page, shots, "overview")
    assert_no_horizontal_overflow(page)
    lanes = page.query_selector_all("#panel-timeline .lane")
    hsms = {
        row[0] for row in sql_all(dashboard, "SELECT DISTINCT hsm_id FROM events WHERE usecs IS NOT NULL")
    }
    assert {lane.get_attribute("data-lane") for lane in lanes} >= hsms
    assert page.locator("#panel-timeline rect.ev").count() > 10
    assert page.locator("#panel-timeline rect.fl").count() > 0
    assert page.locator("#panel-timeline rect.al").count() > 0
    failed = sum(int(x.inner_text()) for x in page.query_selector_all("#panel-timeline .lane-failed"))
    assert failed == int(page.inner_text("#failed-logins"))
    # Key lifecycle: a generated key shows when and by whom.
    assert page.locator("#table-keys tr[data-key-handle]").count() > 0
    assert page.locator("#table-keys td.key-generated a").count() > 0
    # Alerts are paged: one page of 25, a link to the next.
    total = sql_all(dashboard, "SELECT count(*) FROM alerts")[0][0]
    assert page.locator("#table-alerts tr[data-alert-id]").count() == min(25, total)
    assert page.dialogs == []


def test_filters_apply_to_the_alert_list(page: Any, dashboard: Dashboard, shots: Path) -> None:
    page.goto(dashboard.url + "/?" + urlencode({"opcode": "CN_GENERATE_KEY"}))
    shoot(page, shots, "filtered-generate-key")
    assert_no_horizontal_overflow(page)
    rules = {row.get_attribute("data-rule") for row in page.query_selector_all("#table-alerts tr[data-rule]")}
    assert "failed-login" not in rules
    page.goto(dashboard.url + "/?" + urlencode({"opcode": "CN_LOGIN"}))
    rows = page.query_selector_all("#table-alerts tr[data-rule]")
    shown = {row.get_attribute("data-rule") for row in rows}
    assert "failed-login" in shown
    assert "key-deleted" not in shown and "key-exported" not in shown
    expected = sql_all(
        dashboard,
        "SELECT count(*) FROM alerts WHERE EXISTS (SELECT 1 FROM json_each(alerts.event_ids) j "
        "JOIN events e ON e.event_id = j.value WHERE e.opcode = 'CN_LOGIN')",
    )[0][0]
    assert int(page.inner_text("#alert-total")) == expected == len(rows)
    assert page.inner_text("#active-filters").endswith("opcode=CN_LOGIN")


def test_event_page_shows_fields_record_alerts_and_neighbours(
    page: Any, dashboard: Dashboard, shots: Path
) -> None:
    page.goto(dashboard.url + "/?" + urlencode({"opcode": "CN_WRAP_KEY"}))
    page.click("#table-events a.event-link")
    page.wait_for_url("**/events/*")
    shoot(page, shots, "event")
    assert_no_horizontal_overflow(page)
    assert page.inner_text("#event-fields dd[data-field=opcode]") == "CN_WRAP_KEY"
    assert "CN_WRAP_KEY" in page.inner_text("#record-text")
    assert "key-exported" in page.inner_text("#table-event-alerts")
    assert page.locator("#neighbour-current").count() == 1
    assert page.locator("#table-neighbours tbody tr").count() >= 5
    assert "Run by" in page.inner_text("#session-user")
    # The alert opens its own page, which links back to the event.
    page.click("#table-event-alerts a.alert-title")
    page.wait_for_url("**/alerts/*")
    assert "CN_WRAP_KEY" in page.inner_text("#table-alert-events")


def test_a_sequence_gap_shows_on_the_event_page(page: Any, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/?" + urlencode({"alerts_page": "1"}))
    gap = sql_all(dashboard, "SELECT alert_id FROM alerts WHERE rule = 'sequence-gap'")[0][0]
    page.goto(dashboard.url + f"/alerts/{gap}")
    page.click("#table-alert-events a.event-link >> nth=-1")
    page.wait_for_url("**/events/*")
    assert "with no record" in page.inner_text("#table-neighbours tr.gap")


def test_hostile_strings_stay_text_on_every_view(page: Any, dashboard: Dashboard, shots: Path) -> None:
    page.goto(dashboard.url + "/?" + urlencode({"hsm_id": XSS_HSM}))
    shoot(page, shots, "hostile")
    assert_no_horizontal_overflow(page)
    assert XSS_HSM in page.inner_text("#panel-timeline")
    assert XSS_USER in page.inner_text("#table-alerts")
    page.click("#table-events a.event-link >> nth=0")
    page.wait_for_url("**/events/*")
    assert XSS_USER in page.inner_text("#record-text")
    assert page.query_selector("img[src=x]") is None
    assert page.query_selector("svg[onload]") is None
    assert page.query_selector("body script") is None
    assert page.dialogs == []
    response = page.goto(dashboard.url + "/events/%3Cimg%20src%3Dx%3E")
    assert response.status == 404
    assert "<img src=x>" in page.inner_text("#error")


def test_key_lifecycle_page_is_paged(page: Any, dashboard: Dashboard, shots: Path) -> None:
    page.goto(dashboard.url + "/keys")
    shoot(page, shots, "keys")
    assert_no_horizontal_overflow(page)
    keys = sql_all(dashboard, "SELECT count(DISTINCT key_handle) FROM events WHERE key_handle IS NOT NULL")[
        0
    ][0]
    assert page.inner_text("#key-total") == f"{keys} key handles"
    assert page.locator("#table-keys tr[data-key-handle]").count() == min(25, keys)
    if keys > 25:
        page.click("#pager-keys a.next")
        assert page.locator("#table-keys tr[data-key-handle]").count() == min(25, keys - 25)
