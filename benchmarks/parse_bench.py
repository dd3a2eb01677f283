"""Parser throughput against its floor, in one run.

(a) records/s for decode + parse + normalise + encode of CloudWatch subscription payloads, the
    encoding being the HEC line of the default (lean) event format: the Lambdas' per-record work
    without the network; (a') the same with the normalised JSON event (the `json` format's body);
(b) the floor: base64 + gunzip + JSON-decode of the same payloads and re-encoding each message as a
    JSON string (what any forwarder must do at the least);
(c) the ratio (a)/(b). Targets (issue 2): (a) >= 150,000 records/s on one core, (c) >= 0.5.

The floor is measured twice: with msgspec (the JSON library hsmaudit uses, the strictest floor)
and with the standard library's json (what a plain forwarder uses); both ratios are printed.
With `--gdi-toolkit PATH` (Splunk's `CloudWatchLogs-Firehose-Resources/lambda.py`) the same
payloads also go through that transform (decode + one string concatenation per record, no
parsing) as a peer's figure. All runs alternate; medians are printed (target, issue 15: (c) >= 0.5).

Usage: python benchmarks/parse_bench.py [--payloads 400] [--records 50] [--repeat 3]
       [--gdi-toolkit PATH]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from hsmaudit.aws.firehose import transform_record
from hsmaudit.records.event import HsmEvent, event_to_json
from hsmaudit.records.render import SEPARATORS, render_text_record
from hsmaudit.sinks.hec.envelope import EventEncoder
from hsmaudit.sources.cloudwatch import decode_subscription_event, log_messages
from hsmaudit.sources.message import parse_log_message

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import fast_match, firehose_invocations, load_gdi_transform, time_transform

OPS = [
    ("CN_LOGIN", 0xD, "MGMT_USER_DETAILS_LOG", 2),
    ("CN_LOGOUT", 0xE, "MGMT_USER_DETAILS_LOG", 2),
    ("CN_CREATE_USER", 0x3, "MGMT_USER_DETAILS_LOG", 2),
    ("CN_GENERATE_KEY", 0x17, "MGMT_KEY_DETAILS_LOG", 1),
    ("CN_GENERATE_KEY_PAIR", 0x19, "MGMT_KEY_DETAILS_LOG", 1),
    ("CN_EXTRACT_MASKED_OBJECT_USER", 0xF0, "MGMT_KEY_DETAILS_LOG", 1),
    ("CN_INSERT_MASKED_OBJECT_USER", 0xF1, "MGMT_KEY_DETAILS_LOG", 1),
    ("CN_DESTROY_OBJECT", 0x11, "MGMT_KEY_DETAILS_LOG", 1),
    ("CN_APP_FINALIZE", 0x7, "MINIMAL_LOG_ENTRY", 0),
    ("CN_SHARE_OBJECT", 0x12, "UNKNOWN_LOG_TYPE", 5),
]


def make_payloads(count: int, per_payload: int, seed: int = 1) -> list[dict[str, Any]]:
    """Realistic subscription payloads: one HSM stream each, mixed log types and separator styles."""
    rng = random.Random(seed)
    payloads = []
    usecs = 1_700_000_000_000_000
    for index in range(count):
        style = SEPARATORS[index % len(SEPARATORS)]
        messages = []
        for number in range(per_payload):
            opcode, code, log_type, log_code = rng.choice(OPS)
            usecs += rng.randint(1_000, 3_000_000)
            failed = opcode == "CN_LOGIN" and rng.random() < 0.1
            event = HsmEvent(
                usecs=usecs,
                sequence_no=index * per_payload + number,
                reboot_counter=0x107,
                command_type="CN_MGMT_CMD",
                command_type_code=0,
                opcode=opcode,
                opcode_code=code,
                session_handle=f"0x{rng.randint(0x1000000, 0xFFFFFFF):x}",
                success=not failed,
                response_code=163 if failed else 0,
                response="RET_USER_LOGIN_FAILURE" if failed else "SUCCESS",
                log_type=log_type,
                log_type_code=log_code,
                user_name=rng.choice(["admin", "app_user", "crypto_user", "bob"]) if log_code == 2 else None,
                user_type=rng.choice(["CN_CRYPTO_USER", "CN_CRYPTO_OFFICER"]) if log_code == 2 else None,
                user_type_code=1 if log_code == 2 else None,
                key_handle=rng.randint(1, 2_000_000) if log_code == 1 else None,
            )
            messages.append(render_text_record(event, style))
        document = {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": "/aws/cloudhsm/cluster-bench",
            "logStream": f"hsm-{index % 3}",
            "subscriptionFilters": ["hsmaudit"],
            "logEvents": [
                {"id": f"{index:028d}{n:028d}", "timestamp": 1_700_000_000_000 + n, "message": m}
                for n, m in enumerate(messages)
            ],
        }
        data = base64.b64encode(gzip.compress(json.dumps(document).encode(), compresslevel=6)).decode()
        payloads.append({"awslogs": {"data": data}})
    return payloads


def lean_pipeline(payloads: list[dict[str, Any]]) -> int:
    """(a): decode, parse, normalise and build every record's HEC line (default format).

    The Firehose transformation's per-record function, which takes the same base64(gzip) data: a
    clean record's lean line needs only its time and id from the parse (`lean_identity`).
    """
    encoder = EventEncoder()
    count = 0
    for payload in payloads:
        count += transform_record(payload["awslogs"]["data"], encoder=encoder, name="bench").events
    return count


def full_pipeline(payloads: list[dict[str, Any]]) -> int:
    """(a'): decode, parse, normalise and encode every record as the JSON event."""
    count = 0
    for payload in payloads:
        for document in decode_subscription_event(payload):
            for item in log_messages(document):
                event_to_json(parse_log_message(item))
                count += 1
    return count


_decode = msgspec.json.decode
_encode = msgspec.json.encode


def floor(payloads: list[dict[str, Any]]) -> int:
    """(b): base64 + gunzip + JSON decode, and each message re-encoded as a JSON string."""
    count = 0
    for payload in payloads:
        document = _decode(gzip.decompress(base64.b64decode(payload["awslogs"]["data"])))
        for entry in document["logEvents"]:
            _encode(entry["message"])
            count += 1
    return count


def floor_stdlib(payloads: list[dict[str, Any]]) -> int:
    """(b) with the standard library's json instead of msgspec."""
    count = 0
    for payload in payloads:
        document = json.loads(gzip.decompress(base64.b64decode(payload["awslogs"]["data"])))
        for entry in document["logEvents"]:
            json.dumps(entry["message"])
            count += 1
    return count


def rate(work: Callable[[list[dict[str, Any]]], int], payloads: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    count = work(payloads)
    return count / (time.perf_counter() - start)


def gdi_transform(path: Path, per_payload: int) -> Callable[[list[dict[str, Any]]], int]:
    """The gdi-toolkit transform over the payloads as Firehose invocations; returns records done."""
    handler = load_gdi_transform(path)

    def work(payloads: list[dict[str, Any]]) -> int:
        time_transform(handler, firehose_invocations(payloads))
        return len(payloads) * per_payload

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payloads", type=int, default=400)
    parser.add_argument("--records", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gdi-toolkit", type=Path, help="the gdi-toolkit's Firehose lambda.py")
    args = parser.parse_args()
    payloads = make_payloads(args.payloads, args.records)
    records = args.payloads * args.records
    works: dict[str, Callable[[list[dict[str, Any]]], int]] = {
        "lean": lean_pipeline,
        "json": full_pipeline,
        "floor": floor,
        "floor_stdlib": floor_stdlib,
    }
    if args.gdi_toolkit:
        works["gdi"] = gdi_transform(args.gdi_toolkit, args.records)
    rates: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(args.repeat):
        for name, work in works.items():
            rates[name].append(rate(work, payloads))
    lean, full, base, base_stdlib = (
        statistics.median(rates[name]) for name in ("lean", "json", "floor", "floor_stdlib")
    )
    print(
        f"records per run:                               {records:,} (medians of {args.repeat} alternating runs)"
    )
    print(f"fast-path match:                               {fast_match()}")
    print(f"(a) decode+parse+normalise+HEC line (lean):    {lean:,.0f} records/s")
    print(f"(a') decode+parse+normalise+JSON event:        {full:,.0f} records/s")
    print(f"(b) floor, msgspec (b64+gunzip+JSON+encode):   {base:,.0f} records/s")
    print(f"(b') floor, stdlib json:                       {base_stdlib:,.0f} records/s")
    print(f"(c) ratio (a)/(b):                             {lean / base:.2f}")
    print(f"(c') ratio (a)/(b'):                           {lean / base_stdlib:.2f}")
    print(f"     ratio (a')/(b):                           {full / base:.2f}")
    if "gdi" in rates:
        gdi = statistics.median(rates["gdi"])
        print(
            f"gdi-toolkit transform (decode, concatenate):   {gdi:,.0f} records/s; (a) is {lean / gdi:.2f}x of it"
        )


if __name__ == "__main__":
    main()
