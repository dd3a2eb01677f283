"""`hsmaudit demo` is repeatable, through the real console script.

Run twice headless in one folder (default store, records placed at the current time, so the two
runs' records differ): both runs print the same alert lines, none of them false, and the summary
is readable (no Python reprs, no URL of a server that has already stopped).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from .payloads import record_text

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))


def demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HSMAUDIT_", "AWS_"))}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    return subprocess.run(
        [HSMAUDIT, "demo", "--headless", *args],
        capture_output=True, text=True, timeout=240, check=False, env=env, cwd=cwd,
    )  # fmt: skip


def alert_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("alert ")]


def test_the_demo_twice_in_one_folder_shows_the_same_alerts(tmp_path: Path) -> None:
    first = demo(tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout
    second = demo(tmp_path)
    assert second.returncode == 0, second.stderr + second.stdout
    # THEN the same alert lines, and none a scenario did not ask for
    assert alert_lines(first) == alert_lines(second)
    assert len(alert_lines(first)) >= 8
    assert not any("sequence-duplicate" in line for line in alert_lines(second))
    assert "unexpected alerts" in second.stdout
    # AND the store holds the second run only (a fresh store per run)
    with sqlite3.connect(tmp_path / ".hsmaudit" / "demo.sqlite3") as connection:
        rules = [row[0] for row in connection.execute("SELECT rule FROM alerts")]
    assert "sequence-duplicate" not in rules
    # AND the headless summary is for people: no dict repr, no URL of the stopped server
    for output in (second.stdout, second.stderr):
        assert "http://" not in output
        assert "{'" not in output
    assert "hsmaudit serve --db .hsmaudit/demo.sqlite3" in second.stdout


def test_a_store_with_other_events_is_not_wiped_without_reset(tmp_path: Path) -> None:
    # GIVEN a real store (other events) named as the demo's store
    records = tmp_path / "records.txt"
    records.write_text("\n".join(record_text(seq) for seq in range(3)) + "\n")
    store = tmp_path / "real.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HSMAUDIT_", "AWS_"))}
    subprocess.run(
        [HSMAUDIT, "send", str(records), "--db", str(store), "--log-group", "/aws/cloudhsm/cluster-real0001"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    refused = demo(tmp_path, "--db", str(store), "--scenario", "seed")
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith(f"hsmaudit: {store} holds other events than this demo's cluster")
    assert "--reset" in refused.stderr
    with sqlite3.connect(store) as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone()[0] == 3
    # AND with --reset it is replaced by the demo's own store
    replaced = demo(tmp_path, "--db", str(store), "--scenario", "seed", "--reset")
    assert replaced.returncode == 0, replaced.stderr + replaced.stdout
    with sqlite3.connect(store) as connection:
        clusters = {row[0] for row in connection.execute("SELECT DISTINCT cluster_id FROM events")}
    assert "cluster-real0001" not in clusters
