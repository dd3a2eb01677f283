"""ops/inputs.py: what parse, detect and send read, in-process on real files and a real stdin."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest

from hsmaudit.ops.inputs import read_events
from hsmaudit.records.event import event_to_json
from hsmaudit.records.parse import parse_message
from hsmaudit.sources.errors import SourceError
from hsmaudit.sources.files import STDIN

GROUP = "/aws/cloudhsm/cluster-likphkxygsn"
STREAM = "hsm-abcdefghijk"


def _record(samples_dir: Path) -> str:
    return (samples_dir / "aws-doc-06-login-co-success.txt").read_text()


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_a_record_file_is_parsed_with_the_origin_given(tmp_path: Path, samples_dir: Path) -> None:
    path = tmp_path / "login.txt"
    path.write_text(_record(samples_dir))
    empty: list[str] = []
    events = list(read_events([str(path)], log_group=GROUP, log_stream=STREAM, empty=empty))
    assert [event.opcode for event in events] == ["CN_LOGIN"]
    assert (events[0].cluster_id, events[0].hsm_id) == ("cluster-likphkxygsn", STREAM)
    assert events[0].parse_error is None
    assert empty == []


def test_parsed_events_pass_through_unchanged(tmp_path: Path, samples_dir: Path) -> None:
    event = parse_message(_record(samples_dir), log_group=GROUP, log_stream=STREAM)
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(event_to_json(event) + b"\n" + event_to_json(event) + b"\n"))
    events = list(read_events([str(path)], log_group=None, log_stream=None))
    assert events == [event, event]


def test_blank_and_empty_files_are_reported_in_order(tmp_path: Path, samples_dir: Path) -> None:
    blank, nothing, record = tmp_path / "blank.txt", tmp_path / "nothing.txt", tmp_path / "r.txt"
    blank.write_text("  \n\t\n")
    nothing.write_bytes(b"")
    record.write_text(_record(samples_dir))
    empty: list[str] = []
    paths = [str(blank), str(record), str(nothing)]
    events = list(read_events(paths, log_group=None, log_stream=None, empty=empty))
    assert len(events) == 1
    assert empty == [str(blank), str(nothing)]


def test_content_without_a_record_is_not_blank(tmp_path: Path) -> None:
    """A CloudWatch control message has content but no audit record: not an empty export."""
    control = {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health"}],
    }
    path = tmp_path / "control.json"
    path.write_text(json.dumps(control))
    empty: list[str] = []
    assert list(read_events([str(path)], log_group=None, log_stream=None, empty=empty)) == []
    assert empty == []


def test_stdin_is_read_and_a_blank_one_reported(monkeypatch: pytest.MonkeyPatch, samples_dir: Path) -> None:
    _stdin(monkeypatch, _record(samples_dir).encode())
    empty: list[str] = []
    events = list(read_events([STDIN], log_group=GROUP, log_stream=STREAM, empty=empty))
    assert [event.opcode for event in events] == ["CN_LOGIN"] and empty == []
    _stdin(monkeypatch, b"\n   \n")
    assert list(read_events([STDIN], log_group=None, log_stream=None, empty=empty)) == []
    assert empty == ["stdin"]


def test_a_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"missing\.txt"):
        list(read_events([str(tmp_path / "missing.txt")], log_group=None, log_stream=None))
