"""The operator commands against hsmaudit's own local collector (`hsmaudit serve`), end to end:
doctor finds it healthy, backfill delivers a cluster's history into it through HEC exactly once,
and the dashboard API counts what arrived."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .test_cli_harness import HSMAUDIT, Moto, clean_env, make_cluster, moto, run_cli

__all__ = ["moto"]  # fixture used by name

TOKEN = "collector-token"


@dataclass
class Collector:
    url: str
    db: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    port = free_port()
    db = tmp_path / "collector.sqlite3"
    process = subprocess.Popen(
        [HSMAUDIT, "serve", "--port", str(port), "--db", str(db), "--token", TOKEN, "--no-detect"],
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/services/collector/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"hsmaudit serve did not start: {process.communicate()[1]}")
            time.sleep(0.1)
    yield Collector(url=url, db=db)
    process.send_signal(2)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_doctor_finds_the_local_collector_healthy(collector: Collector) -> None:
    result = run_cli(
        "doctor", "--skip-aws", "--json", "--hec-url", collector.url, env={"HSMAUDIT_HEC_TOKEN": TOKEN}
    )
    checks = {c["check"]: c for c in map(json.loads, result.stdout.splitlines())}
    assert result.returncode == 0, (checks, result.stderr)
    assert checks["hec.token"]["status"] == "ok"
    assert checks["hec.index"]["status"] == "ok"
    wrong = run_cli("doctor", "--skip-aws", "--hec-url", collector.url, env={"HSMAUDIT_HEC_TOKEN": "nope"})
    assert wrong.returncode == 1
    assert "hec.token" in wrong.stderr


def test_backfill_into_the_local_collector_is_counted_once(
    moto: Moto, collector: Collector, tmp_path: Path
) -> None:
    cluster = make_cluster(moto, hsms=2, records=25)
    env = {**moto.env, "HSMAUDIT_HEC_URL": collector.url, "HSMAUDIT_HEC_TOKEN": TOKEN}
    args = ["backfill", "--cluster", cluster.cluster_id, "--since", "2d", "--no-progress", "--json"]
    args += ["--max-rps", "200", "--page-size", "7"]
    first = run_cli(*args, "--checkpoint", str(tmp_path / "a.json"), "--stop-after-pages", "2", env=env)
    assert first.returncode == 130, first.stderr
    second = run_cli(*args, "--checkpoint", str(tmp_path / "a.json"), env=env)
    assert second.returncode == 0, second.stderr
    with urllib.request.urlopen(
        f"{collector.url}/api/summary?cluster_id={cluster.cluster_id}", timeout=10
    ) as answer:
        summary = json.load(answer)
    assert summary["total_events"] == cluster.total
