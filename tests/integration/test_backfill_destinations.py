"""Backfill checkpoints are per destination, through the real console script (moto + our HEC).

A window backfilled into the local store (`--db`) or a file (`--out`) has not reached Splunk:
the same command line pointed at HEC must deliver every record, not report "complete: 0 events".
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .fault_hec import TOKEN, FaultHec
from .test_cli_harness import HSMAUDIT, Moto, clean_env, make_cluster, moto

__all__ = ["moto"]  # fixture used by name


def backfill(
    cwd: Path, cluster_id: str, *more: str, env: dict[str, str], as_json: bool = True
) -> subprocess.CompletedProcess[str]:
    """The same command line every time, only the destination differs (default checkpoint path)."""
    return subprocess.run(
        [HSMAUDIT, "backfill", "--cluster", cluster_id, "--since", "2d", "--no-progress",
         "--max-rps", "200", *(["--json"] if as_json else []), *more],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd, env=clean_env(env),
    )  # fmt: skip


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def test_a_window_in_the_store_or_a_file_is_still_delivered_to_hec(
    moto: Moto, fault_hec: FaultHec, tmp_path: Path
) -> None:
    cluster = make_cluster(moto, hsms=2, records=12)
    hec = {**moto.env, "HSMAUDIT_HEC_URL": fault_hec.url, "HSMAUDIT_HEC_TOKEN": TOKEN}
    # GIVEN the window backfilled into the store, then into a JSON-lines file
    assert (
        summary(backfill(tmp_path, cluster.cluster_id, "--db", "events.sqlite3", env=moto.env))["delivered"]
        == cluster.total
    )
    assert (
        summary(backfill(tmp_path, cluster.cluster_id, "--out", "events.jsonl", env=moto.env))["delivered"]
        == cluster.total
    )
    # WHEN the same command line is pointed at HEC
    to_hec = summary(backfill(tmp_path, cluster.cluster_id, env=hec))
    # THEN every record reaches HEC, once
    assert to_hec["delivered"] == to_hec["accepted"] == cluster.total
    assert len(fault_hec.accepted) == cluster.total
    # AND each destination keeps its own checkpoint: a second HEC run sends nothing again
    again = summary(backfill(tmp_path, cluster.cluster_id, env=hec))
    assert again["complete"] and again["delivered"] == 0
    assert len(fault_hec.accepted) == cluster.total
    # and says why, for people: nothing new, not a silent "0 events delivered"
    people = backfill(tmp_path, cluster.cluster_id, env=hec, as_json=False)
    assert people.returncode == 0, people.stderr
    assert f"nothing new: earlier runs already delivered this window to HEC {fault_hec.url}" in people.stderr
    assert f"({cluster.total} events, per the checkpoint); --restart sends it again" in people.stderr
    checkpoints = sorted((tmp_path / ".hsmaudit").glob("backfill-*.json"))
    assert len(checkpoints) == 3
    recorded = {json.loads(path.read_text())["destination"].split(" ")[0] for path in checkpoints}
    assert recorded == {"db", "out", "hec"}


def test_another_hec_index_is_another_destination(moto: Moto, fault_hec: FaultHec, tmp_path: Path) -> None:
    cluster = make_cluster(moto, hsms=1, records=5)
    hec = {**moto.env, "HSMAUDIT_HEC_URL": fault_hec.url, "HSMAUDIT_HEC_TOKEN": TOKEN}
    summary(backfill(tmp_path, cluster.cluster_id, "--index", "audit", env=hec))
    second = summary(backfill(tmp_path, cluster.cluster_id, "--index", "audit_copy", env=hec))
    assert second["delivered"] == cluster.total
    assert [e["index"] for e in fault_hec.events()] == ["audit"] * 5 + ["audit_copy"] * 5


def test_a_named_checkpoint_of_another_destination_is_refused(
    moto: Moto, fault_hec: FaultHec, tmp_path: Path
) -> None:
    cluster = make_cluster(moto, hsms=1, records=4)
    checkpoint = tmp_path / "cp.json"
    db = tmp_path / "events.sqlite3"
    summary(
        backfill(tmp_path, cluster.cluster_id, "--db", str(db), "--checkpoint", str(checkpoint), env=moto.env)
    )
    hec = {**moto.env, "HSMAUDIT_HEC_URL": fault_hec.url, "HSMAUDIT_HEC_TOKEN": TOKEN}
    refused = backfill(tmp_path, cluster.cluster_id, "--checkpoint", str(checkpoint), env=hec)
    assert refused.returncode == 1
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(
        f"hsmaudit: checkpoint {checkpoint} records delivery to db {db.resolve()}, not to hec "
    )
    assert "leave out --checkpoint" in line
    assert fault_hec.requests == 0
