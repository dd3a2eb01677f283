"""Headless Chromium (Debian's `chromium`, driven by Playwright's Python API) against a real
local server filled with simulated activity, the detections' alerts and hostile records."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hsmaudit.detect.engine import detect_events
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.records.render import render_text_record
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.simulate.scenarios import run_scenarios
from hsmaudit.store.database import EventStore

from ..support.collector import Collector, serve_store

CHROMIUM = os.environ.get("HSMAUDIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS_USER = "<img src=x onerror=alert(1)>"
XSS_HSM = 'hsm-"><svg onload=alert(5)>'
XSS_LINE = "<script>alert(4)</script>"
LOG_GROUP = "/aws/cloudhsm/cluster-browser01"


Dashboard = Collector
"""What the browser tests look at: the real collector over a filled store (`support.collector`)."""


def hostile_events() -> list[HsmEvent]:
    """Records whose attacker-controlled strings try to become markup."""
    failed = HsmEvent(
        usecs=1_767_610_000_000_000,
        sequence_no=0,
        reboot_counter=1,
        command_type="CN_MGMT_CMD",
        command_type_code=0,
        opcode="CN_LOGIN",
        opcode_code=0xD,
        session_handle="0x1",
        response_code=163,
        response="RET_USER_LOGIN_FAILURE",
        success=False,
        log_type="MGMT_USER_DETAILS_LOG",
        log_type_code=2,
        user_name=XSS_USER,
        user_type="CN_CRYPTO_OFFICER",
        user_type_code=2,
    )
    text = render_text_record(failed)
    return [
        parse_message(text, log_group=LOG_GROUP, log_stream=XSS_HSM),
        parse_message(
            text.replace("Sequence No : 0x0", "Sequence No : 0x1") + "\n" + XSS_LINE,
            log_group=LOG_GROUP,
            log_stream=XSS_HSM,
        ),
    ]


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    db = tmp_path_factory.mktemp("dashboard") / "dashboard.sqlite3"
    store = EventStore(db)
    events = list(parsed_events(run_scenarios(seed=31).records)) + hostile_events()
    store.add_events(events)
    store.add_alerts(detect_events(events))
    running = serve_store(store, db, token="browser-token")
    yield running
    running.server.stop()
    running.store.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup (installs Debian's chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
