"""Splunk licence per record for each HEC event format, against the record text itself.

Splunk meters licence on `_raw`, and the `_raw` of a HEC `/event` event is its `event` value: the
string itself for a lean event, the JSON text of the object for a json one. Splunk's own recipe
(a CloudWatch Logs blueprint) sends the record text, so "the text" is the baseline a customer
compares against. For every format this prints, per record:

- licence bytes: the UTF-8 length of `event` as the HEC line carries it (decoded for a string);
- the ratio to the record text's UTF-8 length (target for the lean default: at most 1.05);
- HEC body bytes: the envelope line plus its newline, and gzip'd (level 6, the client's) per
  batch of `--batch` lines (one Lambda invocation's worth; a batch gzips better than one line);
- `fields`: bytes of the HEC indexed fields inside the body (stored in the index, not metered).

Lines are built by the real code of both paths: the Lambda path's `HecClient` encoder (built by
`hsmaudit.aws.runtime.build_client` from `Settings`, as the handler does) and the Firehose
transformation (`hsmaudit.aws.firehose.transform_records` on CloudWatch documents, base64 and
all), which must give the same lines. Inputs: every published sample record (`tests/data/samples`,
text and certificate records) and a simulated day of one 3-HSM cluster (`hsmaudit.simulate`:
day-to-day work plus every scenario; mixed log types).

Usage: python benchmarks/license_bench.py [--sessions 150] [--batch 50]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hsmaudit.aws.firehose import transform_records
from hsmaudit.aws.runtime import build_client
from hsmaudit.config import Settings
from hsmaudit.records.event import event_to_json
from hsmaudit.records.parse import parse_message
from hsmaudit.simulate.cluster import ClusterSimulator
from hsmaudit.simulate.scenarios import SCENARIOS, day_to_day
from hsmaudit.sinks.batch import join_lines
from hsmaudit.sinks.hec.envelope import EventEncoder
from hsmaudit.sources.cloudwatch import decode_subscription_event, log_messages
from hsmaudit.sources.message import LogMessage, parse_log_message

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "data" / "samples"
LOG_GROUP = "/aws/cloudhsm/cluster-bench1"
FORMATS: tuple[tuple[str, str, bool], ...] = (
    ("lean", "lean", True),
    ("json", "json", True),
    ("json, no raw", "json", False),
)


@dataclass(frozen=True, slots=True)
class Record:
    """One record as CloudWatch delivers it: its text, group, stream and CloudWatch ids."""

    text: str
    log_group: str
    log_stream: str
    cwl_id: str
    cwl_timestamp: int


@dataclass(frozen=True, slots=True)
class Figures:
    """Per-record averages of one format over one input."""

    records: int
    text: float
    licence: float
    body: float
    gzip: float
    fields: float
    """Bytes of the HEC `fields` object (indexed, not metered), 0 for the json format."""

    @property
    def ratio(self) -> float:
        """Licence bytes over record-text bytes."""
        return self.licence / self.text


def sample_records() -> list[Record]:
    """Every published sample record (text and certificate), on one HSM's and the cert stream."""
    out = []
    for number, path in enumerate(sorted(SAMPLES.glob("aws-*.txt"))):
        text = path.read_text(encoding="utf-8")
        stream = "cluster-bench1" if "certstore" in path.name else "hsm-bench1"
        out.append(Record(text, LOG_GROUP, stream, f"{number:056d}", 1_700_000_000_000 + number))
    return out


def simulated_day(sessions: int, seed: int = 1) -> list[Record]:
    """A 3-HSM cluster's day: `sessions` application sessions, then every scenario once."""
    sim = ClusterSimulator(seed=seed, hsm_count=3)
    day_to_day(sim, sessions=sessions)
    for name in [n for n in SCENARIOS if n != "hsm-silent"] + ["hsm-silent"]:
        SCENARIOS[name].run(sim)
    return [Record(r.message, r.log_group, r.hsm_id, r.cwl_id, r.cwl_timestamp) for r in sim.sorted_records()]


def deliveries(records: Sequence[Record], batch: int) -> Iterator[bytes]:
    """gzip'd CloudWatch documents of `batch` records each, one document per stream, in order."""
    for start in range(0, len(records), batch):
        by_stream: dict[str, list[Record]] = {}
        for record in records[start : start + batch]:
            by_stream.setdefault(record.log_stream, []).append(record)
        yield gzip.compress(b"".join(json.dumps(_document(group)).encode() for group in by_stream.values()))


def lambda_lines(records: Sequence[Record], event_format: str, include_raw: bool, batch: int) -> list[bytes]:
    """The HEC lines the subscription handler builds: its decoder, parser and client's encoder."""
    settings = Settings(
        hec_url="https://hec.invalid:8088",
        hec_token="bench",  # a placeholder: nothing is sent
        event_format=event_format,  # type: ignore[arg-type]
        include_raw=include_raw,
    )
    client = build_client(settings)
    try:
        return [
            client.event_line(parse_log_message(message))
            for data in deliveries(records, batch)
            for message in _messages(data)
        ]
    finally:
        client.close()


def _messages(data: bytes) -> Iterator[LogMessage]:
    for document in decode_subscription_event({"awslogs": {"data": base64.b64encode(data).decode()}}):
        yield from log_messages(document)


def firehose_lines(
    records: Sequence[Record], event_format: str, include_raw: bool, batch: int
) -> list[bytes]:
    """The HEC lines the Firehose transformation returns for the same deliveries."""
    encoder = EventEncoder(event_format=event_format, include_raw=include_raw)  # type: ignore[arg-type]
    firehose_records = [
        {"recordId": str(number), "data": base64.b64encode(data).decode("ascii")}
        for number, data in enumerate(deliveries(records, batch))
    ]
    answer = transform_records({"records": firehose_records}, encoder=encoder, spool=None)
    lines: list[bytes] = []
    for result in answer["records"]:
        if result["result"] != "Ok":
            raise ValueError(f"Firehose record {result['recordId']}: {result['result']}")
        lines.extend(base64.b64decode(result["data"]).splitlines())
    return lines


def _document(records: list[Record]) -> dict[str, object]:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": records[0].log_group,
        "logStream": records[0].log_stream,
        "subscriptionFilters": ["hsmaudit"],
        "logEvents": [{"id": r.cwl_id, "timestamp": r.cwl_timestamp, "message": r.text} for r in records],
    }


def licence_bytes(line: bytes) -> int:
    """`_raw` of one HEC line: the event string's UTF-8 bytes, or the event object's JSON text."""
    event = json.loads(line)["event"]
    if isinstance(event, str):
        return len(event.encode("utf-8", "surrogatepass"))
    return len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def figures(records: Sequence[Record], lines: Sequence[bytes], batch: int) -> Figures:
    """Average bytes per record of `lines` (one per record) against the records' text."""
    if len(lines) != len(records):
        raise ValueError(f"{len(lines)} lines for {len(records)} records")
    wire = sum(
        len(gzip.compress(join_lines(list(lines[i : i + batch])), compresslevel=6, mtime=0))
        for i in range(0, len(lines), batch)
    )
    count = len(records)
    return Figures(
        records=count,
        text=sum(len(r.text.encode("utf-8")) for r in records) / count,
        licence=sum(map(licence_bytes, lines)) / count,
        body=sum(len(line) + 1 for line in lines) / count,
        gzip=wire / count,
        fields=sum(
            len(json.dumps(json.loads(line).get("fields", {}), separators=(",", ":"))) - 2 for line in lines
        )
        / count,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=150, help="application sessions in the day")
    parser.add_argument("--batch", type=int, default=50, help="records per HEC request / Firehose record")
    args = parser.parse_args()

    day = simulated_day(args.sessions)
    log_types = Counter(parse_message(r.text).log_type or "-" for r in day)
    inputs: list[tuple[str, list[Record]]] = [
        (f"samples ({len(sample_records())} records)", sample_records()),
        (f"simulated day ({len(day)} records, {len(log_types)} log types)", day),
    ]
    print("bytes per record; licence = len(_raw) = len(HEC `event`); text = the record as CloudHSM wrote it")
    header = f"{'input':<46} {'format':<13} {'text':>6} {'licence':>8} {'ratio':>6} {'body':>6} {'gzip':>6} {'fields':>7}"
    print(header)
    print("-" * len(header))
    for label, records in inputs:
        for name, event_format, include_raw in FORMATS:
            lines = lambda_lines(records, event_format, include_raw, args.batch)
            same = firehose_lines(records, event_format, include_raw, args.batch)
            if same != lines:
                raise SystemExit(f"{label} {name}: the Firehose and Lambda paths built different lines")
            result = figures(records, lines, args.batch)
            print(
                f"{label:<46} {name:<13} {result.text:>6.0f} {result.licence:>8.0f} "
                f"{result.ratio:>5.2f}x {result.body:>6.0f} {result.gzip:>6.1f} {result.fields:>7.0f}"
            )
    for label, records in inputs:
        # What the forwarder sent before the lean format: the whole event, CloudWatch's metadata too.
        events = [parse_log_message(m) for data in deliveries(records, args.batch) for m in _messages(data)]
        before = sum(len(event_to_json(e)) for e in events) / len(events)
        text = sum(len(r.text.encode("utf-8")) for r in records) / len(records)
        print(
            f"{label:<46} previous default (json + log_group/log_stream/cwl_*): {before:.0f} ({before / text:.2f}x)"
        )
    print(f"log types of the simulated day: {dict(sorted(log_types.items(), key=lambda kv: -kv[1]))}")
    print("(Lambda and Firehose paths built byte-identical lines for every input and format.)")


if __name__ == "__main__":
    main()
