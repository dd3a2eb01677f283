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


def test_the_token_secret_and_the_s3_spool_use_aws_region_too(moto: Moto, tmp_path: Path) -> None:
    from .fault_hec import closed_port_url
    from .payloads import record_text

    # GIVEN the token in Secrets Manager, an S3 spool, and only AWS_REGION set
    secret_arn = moto.client("secretsmanager").create_secret(Name="hec-token", SecretString="s3cr3t-token")[
        "ARN"
    ]
    moto.client("s3").create_bucket(Bucket="spool-region")
    records = tmp_path / "records.txt"
    records.write_text("\n".join(record_text(seq) for seq in range(4)) + "\n")
    env = {
        **without_region(moto),
        "AWS_REGION": REGION,
        "HSMAUDIT_HEC_TOKEN_SECRET_ARN": secret_arn,
        "HSMAUDIT_SPOOL_BUCKET": "spool-region",
        "HSMAUDIT_HEC_MAX_ATTEMPTS": "1",
    }
    # WHEN HEC is down
    result = run_cli("send", str(records), "--hec-url", closed_port_url(), "--json", env=env)
    # THEN the events are in the S3 spool (the secret was read, the bucket reached)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["spooled"] == 4
    assert moto.client("s3").list_objects_v2(Bucket="spool-region")["KeyCount"] == 1


def test_a_token_secret_without_any_region_names_the_fix(moto: Moto, tmp_path: Path) -> None:
    from .fault_hec import closed_port_url
    from .payloads import record_text

    records = tmp_path / "records.txt"
    records.write_text(record_text(1) + "\n")
    env = {**without_region(moto), "HSMAUDIT_HEC_TOKEN_SECRET_ARN": "arn:aws:secretsmanager:x:1:secret:t"}
    result = run_cli("send", str(records), "--hec-url", closed_port_url(), env=env)
    assert result.returncode == 1
    assert "AWS_REGION" in result.stderr, result.stderr


def test_doctor_function_without_a_region_blames_the_region(moto: Moto) -> None:
    result = run_cli(
        "doctor",
        "--json",
        "--skip-hec",
        "--function",
        "hsmaudit-forwarder",
        "--timeout",
        "3",
        env=without_region(moto),
    )
    assert result.returncode == 1
    checks = checks_of(result.stdout)
    assert checks["aws.region"]["status"] == "fail"
    assert "aws.function" not in checks or checks["aws.function"]["status"] != "fail"
