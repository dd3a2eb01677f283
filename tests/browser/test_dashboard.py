"""The dashboard page in headless Chromium: its numbers are `/api/summary`'s and SQL's, the
filters narrow them correctly, and hostile strings from audit records stay text."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from .conftest import XSS_HSM, XSS_LINE, XSS_USER, Dashboard

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()


def sql(dashboard: Dashboard, query: str, *params: object) -> int:
    with sqlite3.connect(dashboard.db) as connection:
        return int(connection.execute(query, params).fetchone()[0])


def number(page: Any, selector: str) -> int:
    return int(page.inner_text(selector).strip())


def panel_numbers(page: Any) -> dict[str, int]:
    return {
        "total": number(page, "#total-events"),
        "failed": number(page, "#failed-logins"),
        "failed_co": number(page, "#failed-logins-co"),
        "failed_cu": number(page, "#failed-logins-cu"),
        "generated": number(page, "#key-generated"),
        "deleted": number(page, "#key-deleted"),
        "exported": number(page, "#key-exported"),
        "alerts": number(page, "#alert-total"),
        "parse_errors": number(page, "#parse-errors"),
    }


def api_numbers(summary: dict[str, Any]) -> dict[str, int]:
    failed = summary["failed_logins"]
    return {
        "total": summary["total_events"],
        "failed": failed["total"],
        "failed_co": failed["by_user_type"].get("CO", 0),
        "failed_cu": failed["by_user_type"].get("CU", 0),
        "generated": summary["key_generated"],
        "deleted": summary["key_deleted"],
        "exported": summary["key_exported"],
        "alerts": sum(summary["alerts"].values()),
        "parse_errors": summary["parse_errors"],
    }


def opcode_rows(page: Any) -> dict[str, int]:
    rows = page.query_selector_all("#table-opcodes tbody tr[data-opcode]")
    return {row.get_attribute("data-opcode"): int(row.query_selector("td.n").inner_text()) for row in rows}


def test_panels_show_the_api_summary_and_the_sql_counts(page: Any, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/")
    shown = panel_numbers(page)
    assert shown == api_numbers(dashboard.api("/api/summary"))
    assert shown["total"] == sql(dashboard, "SELECT count(*) FROM events")
    assert shown["failed"] == sql(
        dashboard, "SELECT count(*) FROM events WHERE opcode = 'CN_LOGIN' AND success = 0"
    )
    assert shown["failed_co"] == sql(
        dashboard,
        "SELECT count(*) FROM events WHERE opcode = 'CN_LOGIN' AND success = 0 AND user_type = 'CN_CRYPTO_OFFICER'",
    )
    assert shown["generated"] == sql(
        dashboard,
        "SELECT count(*) FROM events WHERE opcode IN ('CN_GENERATE_KEY', 'CN_GENERATE_KEY_PAIR') AND success = 1",
    )
    assert shown["deleted"] == sql(
        dashboard,
        "SELECT count(*) FROM events WHERE opcode IN ('CN_DESTROY_OBJECT', 'CN_TOMBSTONE_OBJECT') AND success = 1",
    )
    assert shown["alerts"] == sql(dashboard, "SELECT count(*) FROM alerts")
    assert (
        shown["parse_errors"]
        == sql(dashboard, "SELECT count(*) FROM events WHERE parse_error IS NOT NULL")
        == 1
    )
    assert shown["generated"] > 0 and shown["deleted"] > 0 and shown["failed"] > 0
    # Key generation does not count the masked-object copies the cluster makes to sync its HSMs.
    assert shown["generated"] < sql(
        dashboard, "SELECT count(*) FROM events WHERE opcode LIKE 'CN_%MASKED_OBJECT_USER'"
    )
    with sqlite3.connect(dashboard.db) as connection:
        by_opcode = dict(
            connection.execute("SELECT opcode, count(*) FROM events WHERE opcode IS NOT NULL GROUP BY opcode")
        )
    assert opcode_rows(page) == by_opcode
    assert page.dialogs == []


def test_filters_from_the_form_narrow_the_numbers_correctly(page: Any, dashboard: Dashboard) -> None:
    page.goto(dashboard.url + "/")
    hsm = dashboard.store.stream_status()[0].hsm_id
    page.select_option("#filter-hsm_id", hsm)
    page.select_option("#filter-opcode", "CN_LOGIN")
    page.click("#apply-filters")
    page.wait_for_url("**/?*")
    shown = panel_numbers(page)
    summary = dashboard.api("/api/summary?" + urlencode({"hsm_id": hsm, "opcode": "CN_LOGIN"}))
    assert shown == api_numbers(summary)
    assert shown["total"] == sql(
        dashboard, "SELECT count(*) FROM events WHERE hsm_id = ? AND opcode = 'CN_LOGIN'", hsm
    )
    assert shown["generated"] == 0
    assert opcode_rows(page) == {"CN_LOGIN": shown["total"]}
    assert 0 < shown["total"] < number_unfiltered(page, dashboard)


def number_unfiltered(page: Any, dashboard: Dashboard) -> int:
    return sql(dashboard, "SELECT count(*) FROM events")


def test_time_range_filter_matches_sql_at_any_cut(page: Any, dashboard: Dashboard) -> None:
    # A range that cuts hours in the middle (rollup edges are read from the events table).
    since, until = "2026-01-05T09:17:31.5Z", "2026-01-05T13:02:00Z"
    page.goto(dashboard.url + "/")
    page.fill("#filter-since", since)
    page.fill("#filter-until", until)
    page.select_option("#filter-log_type", "MGMT_KEY_DETAILS_LOG")
    page.click("#apply-filters")
    page.wait_for_url("**/?*")
    shown = panel_numbers(page)
    summary = dashboard.api(
        "/api/summary?" + urlencode({"since": since, "until": until, "log_type": "MGMT_KEY_DETAILS_LOG"})
    )
    assert shown == api_numbers(summary)
    expected = sql(
        dashboard,
        "SELECT count(*) FROM events WHERE log_type = 'MGMT_KEY_DETAILS_LOG' AND usecs >= ? AND usecs < ?",
        1_767_604_651_500_000,
        1_767_618_120_000_000,
    )
    assert shown["total"] == expected > 0


def test_a_bad_time_filter_shows_an_error_not_a_crash(page: Any, dashboard: Dashboard) -> None:
    response = page.goto(dashboard.url + "/?since=" + "not-a-time<b>x</b>")
    assert response.status == 400
    assert "not an ISO-8601 time" in page.inner_text("#error")
    assert page.query_selector("#error b") is None


def test_hostile_strings_from_records_are_shown_as_text_and_no_script_runs(
    page: Any, dashboard: Dashboard
) -> None:
    page.goto(dashboard.url + "/")
    names = [cell.inner_text() for cell in page.query_selector_all("#table-failed-logins td.user-name")]
    assert XSS_USER in names
    page.goto(dashboard.url + "/?" + urlencode({"hsm_id": XSS_HSM}))
    events_text = page.inner_text("#table-events")
    assert XSS_USER in events_text
    assert XSS_LINE in events_text  # shown inside the parse error, as text
    assert XSS_HSM in page.inner_text("#table-streams")
    # The option for the hostile HSM id exists with its exact value (attribute escaping).
    assert page.eval_on_selector("#filter-hsm_id", f"s => [...s.options].some(o => o.value === {XSS_HSM!r})")
    # No element was injected, no handler ran, no dialog opened.
    assert page.query_selector("img[src=x]") is None
    assert page.query_selector("main script, body script") is None
    assert page.query_selector("svg[onload]") is None
    assert page.dialogs == []
    policy = page.evaluate("() => document.querySelector('meta[http-equiv]')")
    assert policy is None  # the CSP comes as a header, checked below
    response = page.goto(dashboard.url + "/")
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
