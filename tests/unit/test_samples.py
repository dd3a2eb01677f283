"""Every published sample parses to the values its `expected.json` lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hsmaudit.records.event import HsmEvent
from hsmaudit.sources.files import read_bytes
from hsmaudit.sources.message import LogMessage, parse_log_message

ANY_NON_NULL = "<any non-null>"


def _expected(samples_dir: Path) -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = json.loads((samples_dir / "expected.json").read_text())
    return data


def _parse_file(path: Path) -> list[HsmEvent]:
    items = read_bytes(path.read_bytes(), name=path.name)
    return [parse_log_message(item) if isinstance(item, LogMessage) else item for item in items]


def test_every_sample_file_is_listed_in_expected(samples_dir: Path) -> None:
    listed = set(_expected(samples_dir))
    on_disk = {p.name for p in samples_dir.iterdir() if p.name not in {"expected.json", "README.md"}}
    assert on_disk == listed


def test_samples_parse_to_expected_values(samples_dir: Path) -> None:
    expected = _expected(samples_dir)
    assert len(expected) >= 19
    for name, wanted in expected.items():
        events = _parse_file(samples_dir / name)
        assert len(events) == len(wanted), name
        for event, fields in zip(events, wanted, strict=True):
            for field, value in fields.items():
                got = getattr(event, field)
                if value == ANY_NON_NULL:
                    assert got is not None, (name, field)
                else:
                    assert got == value, (name, field, got, value)


@pytest.mark.parametrize("name", ["aws-doc-14-generate-key-pair.txt", "aws-doc-30-share-object-tabs.txt"])
def test_sample_raw_is_kept_exactly(samples_dir: Path, name: str) -> None:
    text = (samples_dir / name).read_text()
    (event,) = _parse_file(samples_dir / name)
    assert event.raw == text.strip("\n")
    assert event.parse_error is None


def test_text_samples_have_no_parse_error_and_a_time_that_agrees(samples_dir: Path) -> None:
    for path in sorted(samples_dir.glob("aws-doc-*.txt")):
        (event,) = _parse_file(path)
        assert event.parse_error is None, path.name
        assert event.extra is None, (path.name, event.extra)  # no unknown label, no time disagreement
        assert event.record_format == "text"


def test_certificate_handle_beyond_2_pow_53_stays_exact(samples_dir: Path) -> None:
    (event,) = _parse_file(samples_dir / "aws-certstore-01-createobject.txt")
    assert event.object_handle == 463180677312929947
    assert event.object_handle > 2**53
    assert event.category == "certificate"
    assert event.action == "create"
