"""`hsmaudit parse` through the real console script: every input shape, stdin, tables and errors."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..unit.test_cloudwatch import RECORD, document, envelope

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    # Under pytest, GNU readline (imported for pdb) exports the terminal's LINES/COLUMNS into the
    # C environment, which children inherit: an explicit environment keeps tables 200 wide.
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [HSMAUDIT, *args], input=stdin, capture_output=True, timeout=60, check=False, env=env
    )


def events_of(result: subprocess.CompletedProcess[bytes]) -> list[dict[str, object]]:
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_parse_sample_files(samples_dir: Path) -> None:
    paths = sorted(str(p) for p in samples_dir.glob("aws-*.txt"))
    events = events_of(run("parse", *paths))
    assert len(events) == len(paths)
    assert {e["record_format"] for e in events} == {"text", "certificate"}
    assert all("parse_error" not in e for e in events)  # absent values are left out
    assert all(e["raw"] for e in events)


def test_parse_stdin_with_dash_and_context_flags() -> None:
    events = events_of(
        run(
            "parse",
            "-",
            "--log-group",
            "/aws/cloudhsm/cluster-x",
            "--log-stream",
            "hsm-y",
            stdin=RECORD.encode(),
        )
    )
    assert [(e["cluster_id"], e["hsm_id"], e["user_name"]) for e in events] == [
        ("cluster-x", "hsm-y", "ünïcødé\u2028user")
    ]


def test_parse_piped_stdin_without_arguments() -> None:
    assert len(events_of(run("parse", stdin=(RECORD + "\n" + RECORD).encode()))) == 2


def test_parse_every_json_shape(tmp_path: Path, samples_dir: Path) -> None:
    (tmp_path / "envelope.json").write_text(json.dumps(envelope(document([RECORD, RECORD]))))
    (tmp_path / "decoded.json").write_text(json.dumps(document([RECORD])))
    (tmp_path / "filter.json").write_text(
        json.dumps({"events": [{"logStreamName": "hsm-9", "message": RECORD}]})
    )
    (tmp_path / "lines.jsonl").write_text(json.dumps({"message": RECORD}) + "\n" + json.dumps(RECORD) + "\n")
    (tmp_path / "text.log.gz").write_bytes(gzip.compress(RECORD.encode()))
    names = ["envelope.json", "decoded.json", "filter.json", "lines.jsonl", "text.log.gz"]
    events = events_of(run("parse", *(str(tmp_path / n) for n in names)))
    assert len(events) == 7
    assert [e["hsm_id"] for e in events[:4]] == ["hsm-123", "hsm-123", "hsm-123", "hsm-9"]
    control = events_of(run("parse", str(samples_dir / "cwl-control-message-decoded.json")))
    assert control == []


def test_parse_output_feeds_back_into_parse(tmp_path: Path) -> None:
    first = run("parse", "-", stdin=RECORD.encode())
    (tmp_path / "events.jsonl").write_bytes(first.stdout)
    assert events_of(run("parse", str(tmp_path / "events.jsonl"))) == events_of(first)


def test_no_raw_drops_raw() -> None:
    (event,) = events_of(run("parse", "--no-raw", "-", stdin=RECORD.encode()))
    assert "raw" not in event


def test_table_format_for_people(samples_dir: Path) -> None:
    result = run(
        "parse", "--format", "table", str(samples_dir / "aws-doc-08-login-fail-157-unknown-user.txt")
    )
    assert result.returncode == 0
    out = result.stdout.decode()
    assert "CN_LOGIN" in out
    assert "ExampleUser" in out
    assert "high" in out


def test_bad_records_are_events_not_failures() -> None:
    events = events_of(run("parse", "-", stdin=b"Time: garbage\nnot a line\n"))
    assert len(events) == 1
    assert events[0]["parse_error"]
    assert events[0]["raw"] == "Time: garbage\nnot a line"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (json.dumps({"awslogs": {"data": "!!!"}}).encode(), "not valid base64"),
        (json.dumps({"awslogs": {"data": base64.b64encode(b"nope").decode()}}).encode(), "not valid gzip"),
        (
            json.dumps(
                {"awslogs": {"data": base64.b64encode(gzip.compress(b"{x", mtime=0)).decode()}}
            ).encode(),
            "not valid JSON",
        ),
        (b'{"unterminated": ', "not valid JSON"),
    ],
)
def test_undecodable_input_is_one_line_and_non_zero(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    result = run("parse", str(path))
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.count("\n") == 1
    assert err.startswith(f"hsmaudit: {path}")
    assert reason in err
    assert "Traceback" not in err


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    result = run("parse", str(tmp_path / "nope.txt"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def test_help_explains_the_inputs() -> None:
    result = run("parse", "--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    for word in ("filter-log-events", "stdin", "--format", "--log-group"):
        assert word in text
