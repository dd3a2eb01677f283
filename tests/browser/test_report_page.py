"""The audit report as a browser shows it (headless Chromium, 1400 and 420 px): every section is
there, hostile strings from the store are text, no script runs, the page never scrolls sideways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hsmaudit.ops.report import Period, build_report, events_from_store, render_html

from .conftest import XSS_USER, Dashboard
from .test_dashboard_views import assert_no_horizontal_overflow, page, shoot, shots  # noqa: F401

pytestmark = pytest.mark.browser


def test_report_renders_every_section_and_hostile_strings_as_text(
    page: Any,  # noqa: F811
    dashboard: Dashboard,
    shots: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    report = build_report(events_from_store(dashboard.db, Period()))
    path = tmp_path / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    page.goto(path.as_uri())
    shoot(page, shots, "report")
    headings = [h.inner_text() for h in page.query_selector_all("h2")]
    for expected in (
        "PCI DSS v4",
        "Audit streams",
        "Integrity",
        "Activity by day",
        "Control plane",
        "Alerts",
        "Retention",
    ):
        assert any(expected in heading for heading in headings), (expected, headings)
    assert page.dialogs == []  # nothing hostile ran
    assert page.locator("script").count() == 0
    body = page.inner_text("body")
    assert XSS_USER in body  # shown as text, exactly
    assert report["digests"]["report"] in body
    assert_no_horizontal_overflow(page)
