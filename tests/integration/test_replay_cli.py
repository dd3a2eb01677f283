"""`hsmaudit replay` through the real console script, against loopback HEC servers and moto S3."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import boto3

from hsmaudit.aws.s3spool import S3Spool
from hsmaudit.sinks.spool import SPOOL_SUFFIX, LocalSpool, Spool, SpoolBatch, decode_batch

from .fault_hec import OTHER_TOKEN, TOKEN, FaultHec, closed_port_url

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HSMAUDIT_", "AWS_"))}
    clean.update({"HOME": "/nonexistent", "NO_COLOR": "1", "HSMAUDIT_HEC_TOKEN": TOKEN})
    clean.update(env or {})
    done = subprocess.run(
        [HSMAUDIT, "replay", *args], check=False, capture_output=True, text=True, env=clean, timeout=60
    )
    assert TOKEN not in done.stdout + done.stderr and OTHER_TOKEN not in done.stdout + done.stderr
    return done


def outcomes(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in done.stdout.splitlines()]


def line(n: int) -> bytes:
    return b'{"time":1.000000,"host":"hsm-a","source":"/aws/cloudhsm/c","event":{"n":%d,"u":"\xc3\xb6"}}' % n


def fill(spool: Spool) -> list[bytes]:
    sent = []
    for start in (0, 10, 20):
        lines = tuple(line(n) for n in range(start, start + 10))
        spool.put(SpoolBatch(lines=lines, reason="HEC unavailable"))
        sent.extend(lines)
    spool.put(SpoolBatch(kind="payload", payload=b"%%% bad base64", reason="not valid base64"))
    return sent


def test_replay_sends_each_batch_once_deletes_it_and_is_safe_to_repeat(
    fault_hec: FaultHec, tmp_path: Path
) -> None:
    spool = LocalSpool(tmp_path)
    sent = fill(spool)
    done = run(str(tmp_path), "--hec-url", fault_hec.url)
    assert done.returncode == 0, done.stderr
    assert [o["status"] for o in outcomes(done)] == ["replayed"] * 3 + ["payload"]
    assert Counter(fault_hec.accepted) == Counter(sent)
    assert [spool.get(b).kind for b in spool.list()] == ["payload"]
    assert "replayed 3 batches (30 events accepted)" in done.stderr
    again = run(str(tmp_path), "--hec-url", fault_hec.url)
    assert again.returncode == 0 and [o["status"] for o in outcomes(again)] == ["payload"]
    assert Counter(fault_hec.accepted) == Counter(sent)


def test_replay_with_hec_down_keeps_everything_and_stops(tmp_path: Path) -> None:
    spool = LocalSpool(tmp_path)
    fill(spool)
    before = list(spool.list())
    done = run(str(tmp_path), "--hec-url", closed_port_url(), env={"HSMAUDIT_HEC_BACKOFF_BASE": "0.01"})
    assert done.returncode == 1
    assert [o["status"] for o in outcomes(done)] == ["kept"]
    assert list(spool.list()) == before


def test_replay_quarantines_the_line_hec_refuses_and_delivers_the_rest(
    fault_hec: FaultHec, tmp_path: Path
) -> None:
    spool = LocalSpool(tmp_path)
    spool.put(SpoolBatch(lines=tuple(line(n) for n in range(5)), reason="x"))
    fault_hec.poison = lambda envelope: envelope["event"]["n"] == 2
    done = run(str(tmp_path), "--hec-url", fault_hec.url)
    assert done.returncode == 1
    (outcome,) = outcomes(done)
    assert (outcome["status"], outcome["accepted"], outcome["quarantined"]) == ("quarantined", 4, 1)
    assert fault_hec.accepted == [line(0), line(1), line(3), line(4)]
    assert list(spool.list()) == []
    ((held, reason),) = spool.quarantined()
    assert "rejected this event" in reason
    assert decode_batch(
        (tmp_path / "quarantine" / f"{held}{SPOOL_SUFFIX}").read_bytes(), name=held
    ).lines == (line(2),)
    again = run(str(tmp_path), "--hec-url", fault_hec.url)
    assert again.returncode == 0 and outcomes(again) == [] and len(fault_hec.accepted) == 4


def test_poison_truncated_and_tampered_batches_among_good_ones(fault_hec: FaultHec, tmp_path: Path) -> None:
    """Every good batch is delivered once; the others are quarantined with a reason and shown."""
    spool = LocalSpool(tmp_path)
    good = []
    for start in (0, 10, 20):
        batch = SpoolBatch(lines=tuple(line(n) for n in range(start, start + 5)), reason="HEC unavailable")
        spool.put(batch)
        good.extend(batch.lines)
    poison = SpoolBatch(lines=(line(100),), reason="HEC unavailable")
    truncated = SpoolBatch(lines=(line(200), line(201)), reason="HEC unavailable")
    tampered = SpoolBatch(lines=(line(300),), reason="HEC unavailable")
    for batch in (poison, truncated, tampered):
        spool.put(batch)
    path = tmp_path / f"{truncated.batch_id}{SPOOL_SUFFIX}"
    path.write_bytes(path.read_bytes()[:-9])
    path = tmp_path / f"{tampered.batch_id}{SPOOL_SUFFIX}"
    text = gzip.decompress(path.read_bytes()).replace(b'"n":300', b'"n":301')
    path.write_bytes(gzip.compress(text))
    fault_hec.poison = lambda envelope: envelope["event"]["n"] == 100

    listed = run(str(tmp_path), "--list")
    assert [o["status"] for o in outcomes(listed)] == ["listed"] * 4 + ["unreadable"] * 2
    done = run(str(tmp_path), "--hec-url", fault_hec.url)
    assert done.returncode == 1
    statuses = {o["batch_id"]: o["status"] for o in outcomes(done)}
    assert list(statuses.values()) == ["replayed"] * 3 + ["quarantined"] * 3
    assert Counter(fault_hec.accepted) == Counter(good)  # never the altered line(301)
    reasons = dict(spool.quarantined())
    assert "digest" in reasons[tampered.batch_id]
    assert "not readable" in reasons[truncated.batch_id]
    assert "quarantined 3" in done.stderr
    assert list(spool.list()) == []
    again = run(str(tmp_path), "--hec-url", fault_hec.url)
    assert again.returncode == 0 and Counter(fault_hec.accepted) == Counter(good)
    listed = run(str(tmp_path), "--list")
    assert [o["status"] for o in outcomes(listed)] == ["quarantined"] * 3


def test_spool_files_are_private(tmp_path: Path) -> None:
    spool = LocalSpool(tmp_path / "spool")
    batch = SpoolBatch(lines=(line(1),), reason="x")
    spool.put(batch)
    assert (tmp_path / "spool" / f"{batch.batch_id}{SPOOL_SUFFIX}").stat().st_mode & 0o777 == 0o600


def test_bad_token_keeps_the_batches(tmp_path: Path, fault_hec: FaultHec) -> None:
    spool = LocalSpool(tmp_path)
    fill(spool)
    done = run(str(tmp_path), "--hec-url", fault_hec.url, env={"HSMAUDIT_HEC_TOKEN": OTHER_TOKEN})
    assert done.returncode == 1 and [o["status"] for o in outcomes(done)] == ["kept"]
    assert len(list(spool.list())) == 4 and fault_hec.accepted == []


def test_list_only_sends_nothing(tmp_path: Path, fault_hec: FaultHec) -> None:
    fill(LocalSpool(tmp_path))
    done = run(str(tmp_path), "--list", "--hec-url", fault_hec.url)
    assert done.returncode == 0
    assert [(o["status"], o["events"]) for o in outcomes(done)] == [("listed", 10)] * 3 + [("listed", 1)]
    assert fault_hec.requests == 0


def test_no_spool_anywhere_is_a_one_line_usage_error() -> None:
    done = run("--hec-url", "http://127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("hsmaudit: no spool") and len(done.stderr.strip().splitlines()) == 1


def test_no_hec_url_names_the_flag_and_the_variable_and_keeps_the_spool(tmp_path: Path) -> None:
    spool = LocalSpool(tmp_path)
    fill(spool)
    before = list(spool.list())
    done = run(str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "hsmaudit: no HEC URL configured: set HSMAUDIT_HEC_URL (on the command line: or give --hec-url, "
        "or hec_url in the config file)"
    ]
    assert list(spool.list()) == before


def test_replay_from_s3(aws_env: str, fault_hec: FaultHec) -> None:
    boto3.client("s3").create_bucket(Bucket="replay-s3")
    sent = fill(S3Spool("replay-s3", "spool/"))
    env = {key: os.environ[key] for key in os.environ if key.startswith("AWS_")}
    env.update(HSMAUDIT_SPOOL_BUCKET="replay-s3", HSMAUDIT_SPOOL_PREFIX="spool/")
    done = run("--hec-url", fault_hec.url, env=env)
    assert done.returncode == 0, done.stderr
    assert Counter(fault_hec.accepted) == Counter(sent)
    assert len(list(S3Spool("replay-s3", "spool/").list())) == 1


def test_replay_from_s3_quarantines_a_tampered_batch(aws_env: str, fault_hec: FaultHec) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="replay-q")
    spool = S3Spool("replay-q", "spool/")
    batch = SpoolBatch(lines=(line(1),), reason="x")
    spool.put(batch)
    key = f"spool/{batch.batch_id}{SPOOL_SUFFIX}"
    body = gzip.decompress(s3.get_object(Bucket="replay-q", Key=key)["Body"].read())
    s3.put_object(Bucket="replay-q", Key=key, Body=gzip.compress(body.replace(b'"n":1', b'"n":2')))
    env = {key: os.environ[key] for key in os.environ if key.startswith("AWS_")}
    done = run("s3://replay-q/spool/", "--hec-url", fault_hec.url, env=env)
    assert [o["status"] for o in outcomes(done)] == ["quarantined"] and fault_hec.accepted == []
    assert list(spool.list()) == [] and [b for b, _ in spool.quarantined()] == [batch.batch_id]


def test_list_as_a_table_for_people(tmp_path: Path) -> None:
    fill(LocalSpool(tmp_path))
    done = run(str(tmp_path), "--list", "--format", "table")
    assert done.returncode == 0
    assert "listed" in done.stdout and "HEC unavailable" in done.stdout and "not valid base64" in done.stdout
