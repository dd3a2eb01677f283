"""`hsmaudit send` through the real console script, against our HEC on loopback (and once more
against the independent sink, when it is there)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from .fault_hec import FaultHec
from .payloads import received_event
from .test_cli_harness import hec_sink, kept_events, record_text, run_cli

__all__ = ["hec_sink"]  # fixture used by name

LOG_GROUP = "/aws/cloudhsm/cluster-sendtest1"


def sample_paths(samples_dir: Path) -> list[str]:
    return sorted(str(p) for p in samples_dir.glob("aws-*.txt"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def send_samples(samples_dir: Path, url: str) -> list[str]:
    """`send` every sample record to the HEC at `url`; returns the sample paths."""
    paths = sample_paths(samples_dir)
    result = run_cli(
        "send", *paths, "--log-group", LOG_GROUP, "--log-stream", "hsm-abc", "--json",
        env={"HSMAUDIT_HEC_URL": url, "HSMAUDIT_HEC_TOKEN": "test-token"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["events"] == summary["accepted"] == len(paths)
    # the token is never echoed
    assert "test-token" not in result.stdout + result.stderr
    return paths


def check_sample_envelopes(envelopes: list[dict[str, Any]], paths: list[str]) -> None:
    assert len(envelopes) == len(paths)
    assert {e["source"] for e in envelopes} == {LOG_GROUP}
    # lean, the default: the record text as written, the ids as indexed fields
    assert {e["sourcetype"] for e in envelopes} == {"aws:cloudhsm:audit:text"}
    assert all(e["fields"]["cluster_id"] == "cluster-sendtest1" for e in envelopes)
    assert all(e["event"] == received_event(e).raw for e in envelopes)
    assert {received_event(e).cluster_id for e in envelopes} == {"cluster-sendtest1"}


def test_send_delivers_every_sample_record_to_hec(samples_dir: Path, loopback_hec: FaultHec) -> None:
    paths = send_samples(samples_dir, loopback_hec.url)
    check_sample_envelopes(loopback_hec.events(), paths)


def test_the_independent_sink_takes_what_send_delivers(samples_dir: Path, hec_sink: Any) -> None:
    """Cross-check: an HEC written by another team accepts the same requests (skips without it)."""
    paths = send_samples(samples_dir, hec_sink.url)
    check_sample_envelopes(kept_events(hec_sink), paths)


def test_send_reads_stdin(loopback_hec: FaultHec) -> None:
    text = "\n".join(record_text(0, seq, 1_700_000_000_000_000 + seq) for seq in range(4))
    result = run_cli(
        "send", "-", "--log-group", LOG_GROUP, "--hec-url", loopback_hec.url,
        env={"HSMAUDIT_HEC_TOKEN": "test-token"}, stdin=text.encode(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [received_event(e).sequence_no for e in loopback_hec.events()] == [0, 1, 2, 3]
    assert result.stderr.startswith("sent 4 events to HEC")


def test_send_event_format_json_sends_the_event_object(loopback_hec: FaultHec) -> None:
    text = record_text(0, 5, 1_700_000_000_000_000)
    result = run_cli(
        "send", "-", "--log-group", LOG_GROUP, "--hec-url", loopback_hec.url, "--event-format", "json",
        env={"HSMAUDIT_HEC_TOKEN": "test-token"}, stdin=text.encode(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (envelope,) = loopback_hec.events()
    assert envelope["sourcetype"] == "aws:cloudhsm:audit" and "fields" not in envelope
    assert envelope["event"]["sequence_no"] == 5 and envelope["event"]["cluster_id"] == "cluster-sendtest1"
    assert "log_group" not in envelope["event"]


def test_send_refuses_an_unknown_event_format(loopback_hec: FaultHec) -> None:
    result = run_cli("send", "-", "--hec-url", loopback_hec.url, "--event-format", "xml", stdin=b"")
    assert result.returncode != 0 and "event_format" in result.stderr


def test_flags_beat_environment_beat_the_config_file(
    samples_dir: Path, loopback_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN a config file naming a dead HEC, an index and a sourcetype; the environment overriding
    # the URL and the sourcetype; and a flag overriding the sourcetype again
    config = tmp_path / "config.toml"
    config.write_text(
        f'hec_url = "http://127.0.0.1:{free_port()}"\nhec_index = "from_file"\nhec_sourcetype = "from:file"\n'
    )
    env = {
        "HSMAUDIT_CONFIG": str(config),
        "HSMAUDIT_HEC_URL": loopback_hec.url,
        "HSMAUDIT_HEC_TOKEN": "test-token",
    }
    env["HSMAUDIT_HEC_SOURCETYPE"] = "from:env"
    result = run_cli("send", sample_paths(samples_dir)[0], "--sourcetype", "from:flag", env=env)
    assert result.returncode == 0, result.stderr
    (envelope,) = loopback_hec.events()
    # THEN each setting comes from the highest source that sets it
    assert envelope["sourcetype"] == "from:flag"  # flag > env > file
    assert envelope["index"] == "from_file"  # only the file sets it
    # and --config on the command line wins over HSMAUDIT_CONFIG
    other = tmp_path / "other.toml"
    other.write_text('hec_index = "from_flag_file"\n')
    again = run_cli("send", sample_paths(samples_dir)[0], "--config", str(other), env=env)
    assert again.returncode == 0, again.stderr
    assert loopback_hec.events()[-1]["index"] == "from_flag_file"


def test_hec_down_with_a_spool_keeps_every_event_for_replay(samples_dir: Path, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    result = run_cli(
        "send", *sample_paths(samples_dir), "--spool-dir", str(spool), "--json",
        env={
            "HSMAUDIT_HEC_URL": f"http://127.0.0.1:{free_port()}",
            "HSMAUDIT_HEC_TOKEN": "test-token",
            "HSMAUDIT_HEC_MAX_ATTEMPTS": "1",
        },
    )  # fmt: skip
    # kept, not delivered: exit 1, with the reason in the summary
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["spooled"] == summary["events"] == len(sample_paths(samples_dir))
    assert [r["events"] for r in summary["spooled_reasons"]] == [summary["spooled"]]
    assert "connection refused" in summary["spooled_reasons"][0]["reason"]
    assert list(spool.iterdir())


def test_hec_down_without_a_spool_fails_in_one_line(samples_dir: Path) -> None:
    result = run_cli(
        "send", *sample_paths(samples_dir),
        env={
            "HSMAUDIT_HEC_URL": f"http://127.0.0.1:{free_port()}",
            "HSMAUDIT_HEC_TOKEN": "test-token",
            "HSMAUDIT_HEC_MAX_ATTEMPTS": "1",
        },
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hsmaudit: HEC did not take")
    assert "HSMAUDIT_SPOOL_DIR" in lines[0]


def test_a_wrong_token_is_named_and_never_shown(samples_dir: Path, loopback_hec: FaultHec) -> None:
    result = run_cli(
        "send", sample_paths(samples_dir)[0],
        env={"HSMAUDIT_HEC_URL": loopback_hec.url, "HSMAUDIT_HEC_TOKEN": "wrong-secret-value"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "token" in result.stderr
    assert "wrong-secret-value" not in result.stderr + result.stdout


def test_send_into_the_local_store_is_idempotent(samples_dir: Path, tmp_path: Path) -> None:
    from hsmaudit.store.database import EventStore

    db = tmp_path / "events.sqlite3"
    paths = sample_paths(samples_dir)
    first = run_cli("send", *paths, "--db", str(db), "--json")
    assert first.returncode == 0, first.stderr
    second = run_cli("send", *paths, "--db", str(db), "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["duplicates"] == len(paths)
    with EventStore(db) as store:
        assert store.count_events() == len(paths)


def test_send_without_input_or_hec_explains(tmp_path: Path) -> None:
    missing = run_cli("send", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o.jsonl"))
    assert missing.returncode == 1
    assert "nope.txt: cannot read" in missing.stderr
    no_hec = run_cli("send", "-", stdin=b"Time: x")
    assert no_hec.returncode == 1
    assert no_hec.stderr.strip() == (
        "hsmaudit: no HEC URL: give --hec-url or set HSMAUDIT_HEC_URL (or use --db / --out)"
    )
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("hec_urll = 'x'\n")
    typo = run_cli("send", "-", "--config", str(bad_config), stdin=b"Time: x")
    assert typo.returncode == 1
    assert "unknown settings hec_urll" in typo.stderr
