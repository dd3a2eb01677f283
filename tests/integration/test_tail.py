"""`hsmaudit tail` through the real console script: CloudWatch Logs (moto) and the local store."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from queue import Empty, Queue
from typing import IO

from .test_cli_harness import HSMAUDIT, Moto, clean_env, make_cluster, moto, record_text, run_cli

__all__ = ["moto"]  # fixture used by name

SAMPLES = (
    "aws-doc-06-login-co-success.txt",
    "aws-doc-12-delete-user-co.txt",
    "aws-doc-16-destroy-object-private.txt",
)


def put_samples(moto: Moto, samples_dir: Path, log_group: str, stream: str) -> None:
    logs = moto.client("logs")
    now = int(time.time() * 1000)
    events = [
        {"timestamp": now - 60_000 + index, "message": (samples_dir / name).read_text().strip()}
        for index, name in enumerate(SAMPLES)
    ]
    logs.put_log_events(logGroupName=log_group, logStreamName=stream, logEvents=events)


class LineReader:
    """Reads a process's stdout on a thread, so a test can wait for lines with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.queue: Queue[str] = Queue()
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in iter(stream.readline, ""):
            self.queue.put(line)

    def read_until(self, predicate: Callable[[list[str]], bool], timeout: float = 30) -> list[str]:
        """Lines until `predicate(lines)` holds; never blocks past `timeout`."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while not predicate(lines):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                lines.append(self.queue.get(timeout=remaining))
            except Empty:
                break
        return lines

    def rest(self) -> list[str]:
        """Whatever is left once the process has exited."""
        self.thread.join(timeout=10)
        lines = []
        while not self.queue.empty():
            lines.append(self.queue.get())
        return lines


def test_tail_shows_a_clusters_events_with_critical_ones_tagged(moto: Moto, samples_dir: Path) -> None:
    cluster = make_cluster(moto, hsms=1, records=0)
    (stream,) = cluster.streams
    put_samples(moto, samples_dir, cluster.log_group, stream)
    result = run_cli("tail", "--cluster", cluster.cluster_id, "--since", "10m", env=moto.env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert "CN_LOGIN" in lines[0] and "[CRITICAL]" not in lines[0]
    assert lines[1].startswith("[CRITICAL]") and "CN_DELETE_USER" in lines[1]
    assert lines[2].startswith("[CRITICAL]") and "CN_DESTROY_OBJECT" in lines[2]
    assert all(stream in line for line in lines)


def test_tail_jsonl_with_alerts_prints_events_and_their_alerts(moto: Moto, samples_dir: Path) -> None:
    cluster = make_cluster(moto, hsms=1, records=0)
    (stream,) = cluster.streams
    put_samples(moto, samples_dir, cluster.log_group, stream)
    result = run_cli(
        "tail",
        "--cluster",
        cluster.cluster_id,
        "--since",
        "10m",
        "--format",
        "jsonl",
        "--alerts",
        env=moto.env,
    )
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    events = [o for o in objects if "event_id" in o]
    alerts = [o for o in objects if "rule" in o]
    assert [e["opcode"] for e in events] == ["CN_LOGIN", "CN_DELETE_USER", "CN_DESTROY_OBJECT"]
    assert {"user-deleted", "key-deleted"} <= {a["rule"] for a in alerts}
    assert all(a["cluster_id"] == cluster.cluster_id for a in alerts)


def test_tail_follow_shows_new_events_once_each(moto: Moto) -> None:
    # GIVEN a cluster with 3 records, watched with --follow (polls overlap by --lookback)
    cluster = make_cluster(moto, hsms=1, records=3, start_ms=int(time.time() * 1000) - 30_000)
    (stream,) = cluster.streams
    process = subprocess.Popen(
        [HSMAUDIT, "tail", "--cluster", cluster.cluster_id, "--since", "5m", "--follow", "--interval", "0.3",
         "--format", "jsonl", "--max-rps", "50"],
        env=clean_env(moto.env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        reader = LineReader(process.stdout)
        first = reader.read_until(lambda lines: len(lines) >= 3)
        assert [json.loads(line)["sequence_no"] for line in first] == [0, 1, 2]
        # WHEN two more records arrive
        now = int(time.time() * 1000)
        moto.client("logs").put_log_events(
            logGroupName=cluster.log_group,
            logStreamName=stream,
            logEvents=[
                {"timestamp": now + i, "message": record_text(0, 3 + i, (now + i) * 1000)} for i in (0, 1)
            ],
        )
        more = reader.read_until(lambda lines: len(lines) >= 2)
        # THEN they are shown, and nothing shown before is shown again across several polls
        time.sleep(1.0)
        process.send_signal(2)  # Ctrl-C
        process.wait(timeout=20)
        rest = "".join(reader.rest())
        stderr = process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
    assert [json.loads(line)["sequence_no"] for line in more] == [3, 4]
    assert rest.strip() == ""
    assert process.returncode == 0, stderr


def test_tail_of_the_local_store_shows_the_last_lines_then_follows(tmp_path: Path, samples_dir: Path) -> None:
    from hsmaudit.records.parse import parse_message
    from hsmaudit.store.database import EventStore

    db = tmp_path / "events.sqlite3"
    paths = sorted(str(p) for p in samples_dir.glob("aws-doc-*.txt"))
    sent = run_cli("send", *paths, "--db", str(db), "--log-group", "/aws/cloudhsm/cluster-tail1")
    assert sent.returncode == 0, sent.stderr
    last_two = run_cli("tail", "--db", str(db), "--lines", "2", "--format", "jsonl")
    assert last_two.returncode == 0, last_two.stderr
    assert len(last_two.stdout.splitlines()) == 2
    process = subprocess.Popen(
        [HSMAUDIT, "tail", "--db", str(db), "--lines", "1", "--follow", "--interval", "0.2", "--format", "jsonl"],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        reader = LineReader(process.stdout)
        # the newest stored event first: then tail is following
        assert len(reader.read_until(lambda lines: len(lines) >= 1)) == 1
        with EventStore(db) as store:
            store.add_events(
                [
                    parse_message(
                        record_text(0, 900, 1_700_000_000_000_000), log_group="/aws/cloudhsm/cluster-tail1"
                    )
                ]
            )
        new = reader.read_until(lambda lines: len(lines) >= 1)
        process.send_signal(2)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert [json.loads(line)["sequence_no"] for line in new] == [900]


def test_tail_without_a_source_or_with_a_missing_store_explains(tmp_path: Path) -> None:
    nothing = run_cli("tail")
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == (
        "hsmaudit: give --cluster or --log-group (CloudWatch Logs), or --db (the local store)"
    )
    missing = run_cli("tail", "--db", str(tmp_path / "none.sqlite3"))
    assert missing.returncode == 1
    assert "no local store at" in missing.stderr


def test_a_quiet_stream_is_noted_once_per_quiet_period() -> None:
    import io

    from rich.console import Console

    from hsmaudit.cli.output import OutputFormat
    from hsmaudit.cli.tail import show
    from hsmaudit.records.parse import parse_message

    # GIVEN an event, then polls with nothing new over 12 minutes, then another event and quiet again
    times = iter([0.0, 0.0, 700.0, 760.0, 800.0, 900.0, 1600.0])
    event = parse_message(record_text(0, 1, 1_700_000_000_000_000), log_group="/aws/cloudhsm/cluster-q")
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, no_color=True)
    stream = [event, None, None, None, event, None]
    shown = show(
        stream,
        output=OutputFormat.table,
        engine=None,
        console=console,
        quiet_after=600,
        clock=lambda: next(times),
    )
    # THEN each quiet period longer than 10 minutes is said once, and both events are shown
    lines = buffer.getvalue().splitlines()
    assert shown == 2
    assert [line.startswith("-- no new audit records") for line in lines] == [False, True, False, True]
