"""`send` and `replay` summaries tell the truth, through the real console script.

Against our own loopback HEC (`FaultHec`): a wrong token, a HEC answering 503, self-signed TLS,
a dead port. Each summary says how many events HEC accepted, how many went to the spool and
why (one line per reason), and the command exits 1 whenever anything ended in the spool. Once
HEC is known to be down or to refuse the token, the rest of the run is spooled at once (the
circuit breaker) instead of paying the retry schedule chunk after chunk.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from hsmaudit.sinks.spool import LocalSpool, SpoolBatch

from .fault_hec import OTHER_TOKEN, TOKEN, FaultHec, closed_port_url
from .payloads import record_text
from .test_cli_harness import HSMAUDIT, run_cli

LOG_GROUP = "/aws/cloudhsm/cluster-sumtest1"
# More than one `send` chunk (5000 events), so the breaker must hold across chunks.
MANY = 12_000


def records_file(tmp_path: Path, count: int) -> Path:
    path = tmp_path / f"records-{count}.txt"
    if not path.exists():
        path.write_text("\n".join(record_text(seq) for seq in range(count)) + "\n")
    return path


def send(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = run_cli(
        "send", "--log-group", LOG_GROUP, *args,
        env={"HSMAUDIT_HEC_TOKEN": TOKEN, "HSMAUDIT_BATCH_MAX_EVENTS": "100", **(env or {})},
    )  # fmt: skip
    assert TOKEN not in result.stdout + result.stderr and OTHER_TOKEN not in result.stdout + result.stderr
    return result.returncode, result.stdout, result.stderr


def test_all_accepted_says_so_and_exits_0(tmp_path: Path, fault_hec: FaultHec) -> None:
    code, _, stderr = send(str(records_file(tmp_path, 250)), "--hec-url", fault_hec.url)
    assert code == 0, stderr
    assert stderr.strip().startswith("sent 250 events to HEC")
    assert stderr.strip().endswith(": 250 accepted")
    # the destination's parts stay apart from the time ("no spool in 0.1s" read as one phrase)
    assert f"to HEC {fault_hec.url.rstrip('/')}/services/collector/event (no spool) in " in stderr


def test_a_wrong_token_spools_everything_after_one_refusal_and_exits_1(
    tmp_path: Path, fault_hec: FaultHec
) -> None:
    spool = tmp_path / "spool"
    code, _, stderr = send(
        str(records_file(tmp_path, MANY)), "--hec-url", fault_hec.url, "--spool-dir", str(spool),
        env={"HSMAUDIT_HEC_TOKEN": OTHER_TOKEN},
    )  # fmt: skip
    assert code == 1
    lines = stderr.strip().splitlines()
    # said when it happened, once, not once per chunk
    assert sum("Not retrying" in line for line in lines) == 1
    assert lines[0].startswith("hsmaudit: HEC refused the token (HTTP 403, HEC code 4: Invalid token)")
    assert f"0 accepted, {MANY} spooled" in stderr
    assert (
        f"  {MANY} spooled: HEC refused the token (HTTP 403, HEC code 4: Invalid token); check the token "
        "(HSMAUDIT_HEC_TOKEN or its secret) and that it is enabled in Splunk" in lines
    )
    assert lines[-1] == (
        f"{MANY} events are in the spool {spool}, not in Splunk: fix HEC ('hsmaudit doctor'), "
        f"then run 'hsmaudit replay {spool}'"
    )
    assert fault_hec.accepted == []
    # AND the replay the summary names delivers all of it
    replay = run_cli("replay", str(spool), "--hec-url", fault_hec.url, env={"HSMAUDIT_HEC_TOKEN": TOKEN})
    assert replay.returncode == 0, replay.stderr
    assert len(fault_hec.accepted) == MANY


def test_hec_down_is_retried_for_one_batch_only_then_the_rest_is_spooled(
    tmp_path: Path, fault_hec: FaultHec
) -> None:
    # GIVEN a HEC that answers 503 (busy) to everything
    fault_hec.default = ("status", 503, {"text": "Server is busy", "code": 9}, {})
    spool = tmp_path / "spool"
    started = time.monotonic()
    code, stdout, stderr = send(
        str(records_file(tmp_path, MANY)), "--hec-url", fault_hec.url, "--spool-dir", str(spool), "--json",
        env={"HSMAUDIT_HEC_BACKOFF_BASE": "0.01"},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert code == 1
    summary = json.loads(stdout)
    # THEN one batch got its 5 attempts, and the other 119 batches were not sent at all
    assert fault_hec.requests == summary["hec_requests"] == 5
    assert (summary["accepted"], summary["spooled"]) == (0, MANY)
    reasons = {r["reason"]: r["events"] for r in summary["spooled_reasons"]}
    assert reasons == {
        "HEC still failing after 5 attempts (HTTP 503, HEC code 9: Server is busy)": 100,
        "HEC unavailable (HTTP 503, HEC code 9: Server is busy)": MANY - 100,
    }
    assert summary["spool"] == str(spool)
    assert elapsed < 60, elapsed
    assert "Not retrying" in stderr


def test_a_dead_hec_without_a_spool_fails_naming_the_cause(tmp_path: Path) -> None:
    url = closed_port_url()
    code, _, stderr = send(
        str(records_file(tmp_path, 30)), "--hec-url", url, env={"HSMAUDIT_HEC_BACKOFF_BASE": "0.01"}
    )
    assert code == 1
    (line,) = stderr.strip().splitlines()
    assert line.startswith("hsmaudit: HEC did not take 30 of 30 events")
    assert f"connection refused by {url.removeprefix('http://')}" in line
    assert "HSMAUDIT_SPOOL_DIR" in line


def test_the_next_step_names_the_command_as_started_when_the_venv_is_not_activated(
    tmp_path: Path,
) -> None:
    """After the README's first command (`.venv/bin/hsmaudit ...`, nothing activated) a hint
    that says bare `hsmaudit` is 'command not found': it names the path that was run."""
    spool = tmp_path / "spool"
    args = [str(records_file(tmp_path, 3)), "--hec-url", closed_port_url(), "--spool-dir", str(spool)]
    env = {"HSMAUDIT_HEC_BACKOFF_BASE": "0.01", "PATH": os.defpath}
    code, _, stderr = send(*args, env=env)
    assert code == 1
    assert (
        stderr.strip()
        .splitlines()[-1]
        .endswith(f"fix HEC ('{HSMAUDIT} doctor'), then run '{HSMAUDIT} replay {spool}'")
    )
    _, _, activated = send(*args, env={**env, "PATH": str(Path(HSMAUDIT).parent)})
    assert activated.strip().splitlines()[-1].endswith(f"then run 'hsmaudit replay {spool}'")


def test_self_signed_tls_with_a_spool_says_why_in_the_summary(
    tmp_path: Path, tls_hec: tuple[FaultHec, Path]
) -> None:
    server, _ = tls_hec
    spool = tmp_path / "spool"
    code, _, stderr = send(
        str(records_file(tmp_path, 40)), "--hec-url", server.url, "--spool-dir", str(spool)
    )
    assert code == 1
    (reason,) = [line for line in stderr.splitlines() if line.startswith("  40 spooled: ")]
    assert "TLS certificate verification failed" in reason and "--ca-bundle" in reason


def test_replay_rows_and_summary_say_what_happened_and_why(tmp_path: Path, fault_hec: FaultHec) -> None:
    # GIVEN three spooled batches
    spool = LocalSpool(tmp_path / "spool")
    for start in (0, 10, 20):
        lines = tuple(b'{"time":1.0,"event":{"n":%d}}' % n for n in range(start, start + 10))
        spool.put(SpoolBatch(lines=lines, reason="HEC unavailable (no HTTP answer: connect timed out)"))
    env = {"HSMAUDIT_HEC_TOKEN": TOKEN}
    # WHEN HEC refuses the token
    refused = run_cli(
        "replay", spool.location, "--hec-url", fault_hec.url, env={"HSMAUDIT_HEC_TOKEN": OTHER_TOKEN}
    )
    # THEN replay stops at the first batch, names the reason on its own line, and exits 1
    assert refused.returncode == 1
    assert "  1 batches (10 events) kept: HEC refused the token" in refused.stderr
    assert f"hsmaudit: 3 batches still waiting in {spool.location}; nothing was lost" in refused.stderr
    assert "then run the same replay again" in refused.stderr  # the next step, not just a count
    # WHEN HEC takes them
    done = run_cli("replay", spool.location, "--hec-url", fault_hec.url, env=env)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    # THEN a replayed row no longer carries the failure it was spooled for
    assert [(row["status"], row["reason"]) for row in rows] == [("replayed", "")] * 3
    assert done.stderr.startswith("hsmaudit: replayed 3 batches (30 events accepted)")
    assert "still waiting" not in done.stderr
    # AND an existing but empty spool says there is nothing to replay
    empty = run_cli("replay", spool.location, "--hec-url", fault_hec.url, env=env)
    assert empty.returncode == 0
    assert empty.stderr.strip() == f"hsmaudit: nothing to replay: {spool.location} holds no spooled batches"
