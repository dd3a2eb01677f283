"""The AWS Region through the real console script, against moto: `--region`, `AWS_REGION` and
`AWS_DEFAULT_REGION` all work (boto3 alone reads only the last), and doctor names a missing
Region under its own check, not under credentials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .test_cli_harness import REGION, Moto, make_cluster, moto, run_cli

__all__ = ["moto"]  # fixture used by name


def without_region(moto: Moto) -> dict[str, str]:
    return {k: v for k, v in moto.env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}


def checks_of(stdout: str) -> dict[str, dict[str, Any]]:
    return {check["check"]: check for check in map(json.loads, stdout.splitlines())}


def backfill_into_store(moto: Moto, tmp_path: Path, env: dict[str, str], *more: str) -> Any:
    cluster = make_cluster(moto, hsms=1, records=3)
    return cluster, run_cli(
        "backfill", "--cluster", cluster.cluster_id, "--since", "2d", "--db", str(tmp_path / "e.sqlite3"),
        "--checkpoint", str(tmp_path / "cp.json"), "--json", "--no-progress", *more,
        env=env,
    )  # fmt: skip


def test_aws_region_alone_is_enough_for_backfill(moto: Moto, tmp_path: Path) -> None:
    cluster, result = backfill_into_store(moto, tmp_path, {**without_region(moto), "AWS_REGION": REGION})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["delivered"] == cluster.total


def test_aws_default_region_and_the_flag_work_too(moto: Moto, tmp_path: Path) -> None:
    _, by_default = backfill_into_store(
        moto, tmp_path, {**without_region(moto), "AWS_DEFAULT_REGION": REGION}
    )
    assert by_default.returncode == 0, by_default.stderr
    _, by_flag = backfill_into_store(moto, tmp_path / "f", without_region(moto), "--region", REGION)
    assert by_flag.returncode == 0, by_flag.stderr


def test_no_region_anywhere_names_every_way_to_set_it(moto: Moto, tmp_path: Path) -> None:
    _, result = backfill_into_store(moto, tmp_path, without_region(moto))
    assert result.returncode == 1
    assert "no AWS Region" in result.stderr
    assert "--region" in result.stderr and "AWS_REGION" in result.stderr


def test_doctor_reports_the_region_and_where_it_came_from(moto: Moto) -> None:
    result = run_cli(
        "doctor", "--json", "--skip-hec", "--timeout", "3", env={**without_region(moto), "AWS_REGION": REGION}
    )
    checks = checks_of(result.stdout)
    assert checks["aws.region"]["status"] == "ok"
    assert checks["aws.region"]["summary"] == f"AWS Region {REGION} (from AWS_REGION)"
    assert checks["aws.credentials"]["status"] == "ok"


def test_doctor_files_a_missing_region_under_its_own_check(moto: Moto) -> None:
    result = run_cli("doctor", "--json", "--skip-hec", "--timeout", "3", env=without_region(moto))
    assert result.returncode == 1
    checks = checks_of(result.stdout)
    assert checks["aws.region"]["status"] == "fail"
    assert "AWS_REGION" in checks["aws.region"]["fix"]
    # credentials were not checked (no Region to ask STS in), so they are not blamed
    assert checks["aws.credentials"]["status"] == "skip"
    assert "(aws.region)" in result.stderr
