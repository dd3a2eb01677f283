"""Progress bars and Ctrl-C, through the real console script against a slow loopback HEC.

A bar appears on stderr only when stderr is a terminal (a pseudo-terminal here); piped, stderr
holds the summary and nothing else. SIGINT, as Ctrl-C sends it, stops `send` and `replay` after
the HEC request in flight: they exit 130 and say exactly what HEC took and what is left, and
the counts match what the HEC server received.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hsmaudit.sinks.spool import LocalSpool, SpoolBatch

from .fault_hec import CLI_TOKEN, FaultHec, closed_port_url
from .test_cli_harness import HSMAUDIT, Moto, clean_env, make_cluster, moto, record_text, run_cli
from .test_replay_cli import line

__all__ = ["moto"]  # fixture used by name

LOG_GROUP = "/aws/cloudhsm/cluster-progress1"
BAR = re.compile(r"\d+\.\d%.*ETA")


@pytest.fixture
def slow_hec() -> Iterator[FaultHec]:
    """Our HEC, answering each event request after 0.1 s (the test sets it slower when needed)."""
    server = FaultHec(token=CLI_TOKEN, latency=0.1)
    yield server
    server.stop()


def records_file(directory: Path, count: int) -> Path:
    path = directory / f"records-{count}.txt"
    path.write_text(
        "\n".join(record_text(0, seq, 1_700_000_000_000_000 + seq * 1000) for seq in range(count))
    )
    return path


def env_for(hec: FaultHec, **extra: str) -> dict[str, str]:
    return clean_env({"HSMAUDIT_HEC_URL": hec.url, "HSMAUDIT_HEC_TOKEN": CLI_TOKEN, **extra})


def run_on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run the console script with stderr on a pseudo-terminal, stdout piped; (code, stdout, tty)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [HSMAUDIT, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower, env=env
    )
    os.close(follower)
    out = bytearray()
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(
        target=lambda: out.extend(stdout.read()), daemon=True
    )  # a full pipe would block it
    reader.start()
    seen = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    code = process.wait(timeout=120)
    reader.join(timeout=60)
    os.close(leader)
    return code, out.decode(), seen.decode(errors="replace")


def interrupt_when(process: subprocess.Popen[str], ready: object, timeout: float = 30) -> tuple[str, str]:
    """SIGINT (Ctrl-C) to the process once `ready()` is true; returns its stdout and stderr."""
    deadline = time.monotonic() + timeout
    while not ready() and time.monotonic() < deadline:  # type: ignore[operator]
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=60)


# ------------------------------------------------------------------------------------------- send


def test_send_draws_a_progress_bar_on_a_terminal(slow_hec: FaultHec, tmp_path: Path) -> None:
    records = records_file(tmp_path, 200)
    code, out, tty = run_on_terminal(
        ["send", str(records), "--log-group", LOG_GROUP, "--json"],
        env_for(slow_hec, HSMAUDIT_BATCH_MAX_EVENTS="20", COLUMNS="100", NO_COLOR="1"),
    )
    assert code == 0, tty
    assert json.loads(out)["accepted"] == 200  # stdout: the summary only
    assert "send" in tty and BAR.search(tty), tty  # share done, ETA
    assert re.search(r"\d+ events \d+/s", tty)  # count and rate


def test_send_piped_prints_no_progress(slow_hec: FaultHec, tmp_path: Path) -> None:
    records = records_file(tmp_path, 200)
    result = subprocess.run(
        [HSMAUDIT, "send", str(records), "--log-group", LOG_GROUP],
        capture_output=True, text=True, timeout=60, check=False,
        env=env_for(slow_hec, HSMAUDIT_BATCH_MAX_EVENTS="20"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    (summary,) = result.stderr.splitlines()
    assert summary.startswith("sent 200 events to HEC")
    assert "ETA" not in result.stderr and "━" not in result.stderr and "\x1b" not in result.stderr


def test_ctrl_c_stops_send_after_the_request_in_flight_and_says_what_arrived(
    slow_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN 400 records sent 10 per HEC request to a HEC that takes 0.2 s per request
    slow_hec.latency = 0.2
    records = records_file(tmp_path, 400)
    process = subprocess.Popen(
        [HSMAUDIT, "send", str(records), "--log-group", LOG_GROUP, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env_for(slow_hec, HSMAUDIT_BATCH_MAX_EVENTS="10"),
    )  # fmt: skip
    # WHEN Ctrl-C arrives after a few requests
    out, err = interrupt_when(process, lambda: slow_hec.requests >= 3)
    # THEN it exits 130 and the counts it prints are exactly what HEC has
    assert process.returncode == 130, err
    arrived = len(slow_hec.events())
    assert 0 < arrived < 400 and arrived % 10 == 0
    assert json.loads(out)["accepted"] == arrived
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"hsmaudit: interrupted: {arrived} events accepted by HEC;"), err
    assert f"the rest of {records} was not sent" in last
    assert "Traceback" not in err


def test_a_line_said_while_the_bar_is_drawn_gets_a_line_of_its_own(tmp_path: Path) -> None:
    # GIVEN HEC down and a spool: send says so when it happens, while its bar is on screen
    records = records_file(tmp_path, 300)
    env = clean_env({
        "HSMAUDIT_HEC_URL": closed_port_url(), "HSMAUDIT_HEC_TOKEN": CLI_TOKEN,
        "HSMAUDIT_HEC_MAX_ATTEMPTS": "1", "HSMAUDIT_BATCH_MAX_EVENTS": "10", "COLUMNS": "100",
    })  # fmt: skip
    code, _, tty = run_on_terminal(
        ["send", str(records), "--log-group", LOG_GROUP, "--spool-dir", str(tmp_path / "spool")], env
    )
    assert code == 1, tty  # spooled, not delivered
    # the bar's line is erased (or left) before the line is printed, never written onto
    assert re.search(r"(\x1b\[2K|\n)(\x1b\[[0-9;]*m)*hsmaudit: HEC unavailable", tty), tty


# ----------------------------------------------------------------------------------------- replay


def spool_of(directory: Path, batches: int, per_batch: int) -> LocalSpool:
    spool = LocalSpool(directory)
    for b in range(batches):
        lines = tuple(line(b * per_batch + n) for n in range(per_batch))
        spool.put(SpoolBatch(lines=lines, reason="HEC unavailable"))
    return spool


def test_replay_draws_a_progress_bar_on_a_terminal(slow_hec: FaultHec, tmp_path: Path) -> None:
    spool_of(tmp_path / "spool", 8, 5)
    code, out, tty = run_on_terminal(
        ["replay", str(tmp_path / "spool")], env_for(slow_hec, COLUMNS="100", NO_COLOR="1")
    )
    assert code == 0, tty
    assert len(out.splitlines()) == 8  # one JSON line per batch on stdout, nothing else
    assert "replay" in tty and BAR.search(tty), tty
    assert len(slow_hec.events()) == 40


def test_replay_piped_prints_no_progress(slow_hec: FaultHec, tmp_path: Path) -> None:
    spool_of(tmp_path / "spool", 3, 5)
    result = subprocess.run(
        [HSMAUDIT, "replay", str(tmp_path / "spool")],
        capture_output=True, text=True, timeout=60, check=False, env=env_for(slow_hec),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("hsmaudit: replayed 3 batches (15 events accepted)")
    assert "ETA" not in result.stderr and "━" not in result.stderr


def test_ctrl_c_stops_replay_after_the_batch_in_flight_and_says_what_is_left(
    slow_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN 20 spooled batches of 5 and a HEC that takes 0.3 s per request
    slow_hec.latency = 0.3
    spool = spool_of(tmp_path / "spool", 20, 5)
    process = subprocess.Popen(
        [HSMAUDIT, "replay", str(tmp_path / "spool")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(slow_hec),
    )  # fmt: skip
    out, err = interrupt_when(process, lambda: slow_hec.requests >= 2)
    assert process.returncode == 130, err
    # THEN what it says was delivered is what HEC has, and what it says is left is in the spool
    arrived = len(slow_hec.events())
    left = len(list(spool.list()))
    assert 0 < arrived < 100 and arrived + 5 * left == 100
    assert len(out.splitlines()) == arrived // 5  # one line per replayed batch
    last = err.strip().splitlines()[-1]
    assert last == (
        f"hsmaudit: interrupted: {arrived} events of {arrived // 5} batches delivered; "
        f"{left} batches are left in {tmp_path / 'spool'}: run replay again for them"
    ), err


# ------------------------------------------------------------------------------------ parse, detect


def test_parse_and_detect_draw_a_bar_for_large_inputs_on_a_terminal_only(tmp_path: Path) -> None:
    large = records_file(tmp_path, 3500)
    assert large.stat().st_size >= 1 << 20
    small = records_file(tmp_path, 20)
    env = clean_env({"COLUMNS": "100", "NO_COLOR": "1"})
    for command in ("parse", "detect"):
        code, out, tty = run_on_terminal([command, str(large), "--log-group", LOG_GROUP], env)
        assert code == 0, tty
        assert command in tty and "%" in tty, tty
        if command == "parse":
            assert len(out.splitlines()) == 3500  # stdout untouched: JSON lines only
        code, _, tty = run_on_terminal([command, str(small), "--log-group", LOG_GROUP], env)
        assert code == 0 and "%" not in tty and "ETA" not in tty  # small input: no bar
        piped = subprocess.run(
            [HSMAUDIT, command, str(large), "--log-group", LOG_GROUP],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
        assert piped.returncode == 0
        assert "%" not in piped.stderr and "ETA" not in piped.stderr


# --------------------------------------------------------------------------------------- backfill


def test_backfill_draws_its_bars_on_a_terminal_and_nothing_when_piped(moto: Moto, tmp_path: Path) -> None:
    cluster = make_cluster(moto, hsms=2, records=5)
    args = ["backfill", "--cluster", cluster.cluster_id, "--since", "2d", "--db", str(tmp_path / "e.sqlite3")]
    code, _, tty = run_on_terminal(
        [*args, "--checkpoint", str(tmp_path / "a.json")], clean_env({**moto.env, "COLUMNS": "100"})
    )
    assert code == 0, tty
    assert re.search(r"100\.0%.*5 ev", tty), tty  # one bar per stream: share, events, rate
    piped = run_cli(*args, "--checkpoint", str(tmp_path / "b.json"), env=moto.env)
    assert piped.returncode == 0, piped.stderr
    assert "%" not in piped.stderr and " ev " not in piped.stderr  # the summary table only
    assert "complete: 10 events delivered" in piped.stderr
