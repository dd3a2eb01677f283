"""The parser's fast path in C (records/_scan.c) is the Python it replaces, result for result.

`scan` must give exactly `_FAST_RECORD.match(m).groups()` (or None) for every ASCII message and
decline (NotImplemented) any other, so the parse is the same with or without the extension: checked
on generated records in every separator style, on records mutated a character at a time (blanks,
CR, colons, hex case, cut and doubled lines), on hostile lines, and through `parse_message` and
`lean_identity` with the extension switched off. Its `lean` (lean_identity's checks and id in C)
must give lean_identity's Python answer for the same inputs, whatever the origin ids; its BLAKE2b
must be hashlib's for any bytes; and `lean_lines` (a run of records -> their lean HEC lines) must
give the bytes `lean_identity` + `EventEncoder.text_line` give, and the Firehose transformation
the same payload and counts with or without the extension.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import shutil
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsmaudit.aws.document_lines import LineCounts, document_lines
from hsmaudit.aws.firehose import transform_record
from hsmaudit.records import parse
from hsmaudit.records.parse import lean_identity, parse_message
from hsmaudit.records.render import SEPARATORS, render_text_record
from hsmaudit.sinks.hec.envelope import EventEncoder
from hsmaudit.sources.cloudwatch import CloudWatchLogEvent, SubscriptionDocument
from tests.unit.test_hostile_input import GOOD, NASTY_TEXT
from tests.unit.test_parse_properties import text_events

scan = parse._scan_c

# Characters that move a record across the regex's edges: blanks around separators and values,
# CR, a colon, hex digits in both cases, the labels' own letters, and one non-ASCII letter.
EDGE_CHARACTERS = st.sampled_from([*" \t\r\n:0x9afAF/., UserNamPrivSctKyHdlbT", "\u00e9"])


def _same(message: str) -> None:
    assert scan is not None
    got = scan(message)
    if not message.isascii():
        assert got is NotImplemented
        return
    assert got == parse._regex_groups(message), message


def _mutated(record: str, edits: list[tuple[float, int, str]]) -> str:
    """The record with each edit applied: (where as a share of its length, insert/delete/replace, char)."""
    text = list(record)
    for where, kind, character in edits:
        position = min(int(where * len(text)), len(text) - 1)
        if kind == 0:
            text.insert(position, character)
        elif kind == 1 and len(text) > 1:
            del text[position]
        else:
            text[position] = character
    return "".join(text)


def test_the_extension_is_built_where_there_is_a_compiler() -> None:
    """scripts/setup's editable install compiles it; without it the parser is slower, not wrong."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        assert parse._scan_c is None or callable(parse._scan_c)
        return
    assert parse.FAST_SCAN_COMPILED, "records/_scan.c was not built: run scripts/setup (pip install -e .)"


@pytest.mark.skipif(not parse.FAST_SCAN_COMPILED, reason="records/_scan.c not built (no C compiler)")
class TestScanIsTheRegex:
    @settings(max_examples=300, deadline=None)
    @given(text_events(), st.sampled_from(SEPARATORS))
    def test_generated_records(self, generated, style) -> None:  # type: ignore[no-untyped-def]
        record = render_text_record(generated, style)
        _same(record)
        _same(record + "\n")
        _same(record.replace("\n", "\r\n"))

    @settings(max_examples=1500, deadline=None)
    @given(
        text_events(),
        st.sampled_from(SEPARATORS),
        st.lists(st.tuples(st.floats(0, 1), st.integers(0, 2), EDGE_CHARACTERS), min_size=1, max_size=4),
    )
    def test_records_mutated_at_their_edges(self, generated, style, edits) -> None:  # type: ignore[no-untyped-def]
        _same(_mutated(render_text_record(generated, style), edits))

    @settings(max_examples=300, deadline=None)
    @given(line=NASTY_TEXT, position=st.integers(0, 12))
    def test_hostile_lines_inside_a_record(self, line: str, position: int) -> None:
        lines = GOOD.split("\n")
        lines.insert(position, line)
        _same("\n".join(lines))
        lines[min(position, len(lines) - 1)] = line
        _same("\n".join(lines))

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=400))
    def test_any_text(self, text: str) -> None:
        _same(text)
        _same("Time: " + text)

    def test_declines_what_is_not_a_str(self) -> None:
        assert scan is not None
        with pytest.raises(TypeError):
            scan(b"Time: ")  # type: ignore[arg-type]

    def test_lone_surrogates_are_left_to_the_regex(self) -> None:
        assert scan is not None
        assert scan(GOOD + "\ud800") is NotImplemented

    @settings(max_examples=200, deadline=None)
    @given(text_events(), st.sampled_from(SEPARATORS))
    def test_the_parse_is_the_same_without_the_extension(self, generated, style) -> None:  # type: ignore[no-untyped-def]
        record = render_text_record(generated, style)
        origin = {"log_group": "/aws/cloudhsm/cluster-p", "log_stream": "hsm-q"}
        with_c = parse_message(record, **origin), lean_identity(record, "cluster-p", "hsm-q")
        compiled = parse._scan_c
        try:
            parse._scan_c = None  # type: ignore[assignment]
            without = parse_message(record, **origin), lean_identity(record, "cluster-p", "hsm-q")
        finally:
            parse._scan_c = compiled
        assert with_c == without


ODD_ORIGINS = st.sampled_from(
    [
        ("cluster-p", "hsm-q"),
        (None, None),
        ("", ""),
        ("cluster-\u00e9t\u00e9", "hsm-\u4e2d"),  # not ASCII: UTF-8 in the id's input, as in Python
        ("cluster-p", "hsm-\ud800"),  # a lone surrogate: the Python path decides
    ]
)


def _python_lean(message: str, cluster_id: str | None, hsm_id: str | None) -> tuple[int, str] | None:
    compiled = parse._lean_c
    try:
        parse._lean_c = None  # type: ignore[assignment]
        return lean_identity(message, cluster_id, hsm_id)
    finally:
        parse._lean_c = compiled


def _same_lean(message: str, origin: tuple[str | None, str | None]) -> None:
    expected = _python_lean(message, *origin)  # also converts and remembers the repeating part
    assert lean_identity(message, *origin) == expected, message
    got = parse._lean_c(message, *origin, parse._STATIC)
    assert got is NotImplemented or got == expected, message


@pytest.mark.skipif(not parse.FAST_SCAN_COMPILED, reason="records/_scan.c not built (no C compiler)")
class TestLeanIsLeanIdentity:
    @settings(max_examples=300, deadline=None)
    @given(text_events(), st.sampled_from(SEPARATORS), ODD_ORIGINS)
    def test_generated_records(self, generated, style, origin) -> None:  # type: ignore[no-untyped-def]
        record = render_text_record(generated, style)
        _same_lean(record, origin)
        event = parse_message(record)
        numbers = (event.sequence_no or 0, event.reboot_counter or 0, event.usecs or 0)
        if record.isascii() and all(0 <= value < 1 << 64 for value in numbers) and numbers[2] < 10**19:
            # a clean canonical record with 64-bit numbers is answered in C once its part is known
            assert parse._lean_c(record, "cluster-p", "hsm-q", parse._STATIC) is not NotImplemented

    @settings(max_examples=1000, deadline=None)
    @given(
        text_events(),
        st.sampled_from(SEPARATORS),
        st.lists(st.tuples(st.floats(0, 1), st.integers(0, 2), EDGE_CHARACTERS), min_size=1, max_size=4),
        ODD_ORIGINS,
    )
    def test_records_mutated_at_their_edges(self, generated, style, edits, origin) -> None:  # type: ignore[no-untyped-def]
        _same_lean(_mutated(render_text_record(generated, style), edits), origin)

    @settings(max_examples=300, deadline=None)
    @given(line=NASTY_TEXT, position=st.integers(0, 12), origin=ODD_ORIGINS)
    def test_hostile_lines_inside_a_record(self, line: str, position: int, origin) -> None:  # type: ignore[no-untyped-def]
        lines = GOOD.split("\n")
        lines.insert(position, line)
        _same_lean("\n".join(lines), origin)

    @pytest.mark.parametrize(
        ("label", "value"),
        [
            ("usecs:", "9" * 19),  # the most digits C reads: past the year 10000, None
            ("usecs:", "9" * 20),  # more: Python decides (None)
            ("usecs:", "253402300800000000"),  # the year 10000: None
            ("usecs:", "0000000000000000001513717277140812"),  # leading zeros
            ("Sequence No : ", "0x" + "f" * 16),  # the largest 64-bit sequence number
            ("Sequence No : ", "0x1" + "0" * 16),  # one past it
            ("Sequence No : ", "0x" + "f" * 40),  # far more than 64 bits
            ("Reboot counter : ", "0x" + "0" * 30 + "1"),
        ],
    )
    def test_numbers_at_and_past_64_bits(self, label: str, value: str) -> None:
        lines = GOOD.split("\n")
        index = next(i for i, line in enumerate(lines) if label.split(maxsplit=1)[0] in line)
        if label == "usecs:":
            lines[index] = lines[index].split("usecs:")[0] + "usecs:" + value
        else:
            lines[index] = label + value
        _same_lean("\n".join(lines), ("cluster-p", "hsm-q"))

    def test_a_statics_entry_without_required_is_an_error_not_a_crash(self) -> None:
        parse_message(GOOD)  # remembers GOOD's repeating part
        groups = parse._regex_groups(GOOD)
        assert groups is not None
        key = (groups[4], groups[5], groups[7], groups[8], groups[10])
        with pytest.raises(AttributeError):
            parse._lean_c(GOOD, None, None, {key: object()})
        with pytest.raises(TypeError):
            parse._lean_c(GOOD, None, None, [])  # type: ignore[arg-type]


@contextmanager
def _without_the_extension() -> Iterator[None]:
    """The pure-Python path, as where the extension was not built."""
    saved = parse._scan_c, parse._lean_c, parse._lean_lines_c
    try:
        parse._scan_c = parse._lean_c = parse._lean_lines_c = None  # type: ignore[assignment]
        yield
    finally:
        parse._scan_c, parse._lean_c, parse._lean_lines_c = saved


# User names carry any ASCII: quotes, backslashes, every control character but CR and LF, DEL.
ASCII_NAMES = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F, blacklist_characters="\r\n"),
    min_size=1,
    max_size=40,
).filter(lambda name: name.strip(" \t") == name)


@st.composite
def stream_records(draw: st.DrawFn) -> list[str]:
    """One stream's records: generated, some with hostile user names, some mutated or not records."""
    records = []
    for _ in range(draw(st.integers(0, 12))):
        record = render_text_record(draw(text_events()), draw(st.sampled_from(SEPARATORS)))
        kind = draw(st.integers(0, 5))
        if kind == 1 and "\nUser Name" in record:
            lines = record.split("\n")
            at = max(i for i, line in enumerate(lines) if line.startswith("User Name"))
            label, separator, _ = lines[at].partition(":")
            lines[at] = label + separator + " " + draw(ASCII_NAMES)
            record = "\n".join(lines)
        elif kind == 2:
            record = _mutated(
                record,
                draw(
                    st.lists(
                        st.tuples(st.floats(0, 1), st.integers(0, 2), EDGE_CHARACTERS), min_size=1, max_size=2
                    )
                ),
            )
        elif kind == 3:
            record = draw(st.sampled_from(["", "hello", GOOD + "\u00e9", GOOD.replace("0xd", "0xzz")]))
        records.append(record)
    return records


@pytest.mark.skipif(not parse.FAST_SCAN_COMPILED, reason="records/_scan.c not built (no C compiler)")
class TestLeanLinesIsThePythonPath:
    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(
            st.binary(max_size=600),
            st.sampled_from([0, 1, 127, 128, 129, 255, 256, 257, 70_000]).map(
                lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256)
            ),
        )
    )
    def test_its_blake2b_is_hashlib_s(self, data: bytes) -> None:
        assert parse_c_blake2b(data) == hashlib.blake2b(data, digest_size=16).hexdigest()

    @settings(max_examples=300, deadline=None)
    # (a stream name with a lone surrogate never gets here: msgspec refuses such a document)
    @given(stream_records(), ODD_ORIGINS.filter(lambda origin: origin[1] != "hsm-\ud800"), st.integers(0, 3))
    def test_its_lines_are_lean_identity_and_text_line_s(
        self, records: list[str], origin: tuple[str | None, str | None], start: int
    ) -> None:
        cluster_id, hsm_id = origin
        encoder = EventEncoder()
        stream, group = hsm_id, None if cluster_id is None else f"/aws/cloudhsm/{cluster_id}"
        before_text, before_id = encoder.lean_parts(hsm_id, stream, group, cluster_id)
        entries = [CloudWatchLogEvent(str(n), n, record) for n, record in enumerate(records)]
        start = min(start, len(entries))
        for record in records:
            lean_identity(record, cluster_id, hsm_id)  # the Python path remembers each repeating part
        run = parse.lean_lines(entries, start, cluster_id, hsm_id, before_text, before_id)
        assert run is not None
        lines, stop, _reboot, _sequence, _gaps = run
        assert start <= stop <= len(entries)
        expected = b""
        with _without_the_extension():
            for record in records[start:stop]:
                identity = lean_identity(record, cluster_id, hsm_id)
                assert identity is not None, record  # C was sure of it: so is Python
                line = encoder.text_line(record, *identity, hsm_id, stream, group, cluster_id)
                assert line is not None
                expected += line + b"\n"
        assert lines == expected

    @settings(max_examples=200, deadline=None)
    @given(st.lists(stream_records(), min_size=1, max_size=3), st.sampled_from(["lean", "json"]))
    def test_the_firehose_payload_is_the_same_without_the_extension(
        self, streams: list[list[str]], event_format: str
    ) -> None:
        documents = b"".join(
            msgspec.json.encode(
                {
                    "messageType": "DATA_MESSAGE",
                    "logGroup": "/aws/cloudhsm/cluster-p",
                    "logStream": f"hsm-{n}",
                    "logEvents": [
                        {"id": str(i), "timestamp": i, "message": m} for i, m in enumerate(records)
                    ],
                }
            )
            for n, records in enumerate(streams)
        )
        data = base64.b64encode(gzip.compress(documents)).decode()
        encoder = EventEncoder(event_format=event_format)  # type: ignore[arg-type]
        with_c = transform_record(data, encoder=encoder, name="r")
        with _without_the_extension():
            without = transform_record(data, encoder=EventEncoder(event_format=event_format), name="r")  # type: ignore[arg-type]
        assert with_c == without
        assert with_c.events == sum(map(len, streams)) == len(with_c.lines)

    def test_a_stream_of_clean_records_takes_one_call(self) -> None:
        records = [GOOD.replace("0x3\n", f"{n:#x}\n", 1) for n in range(3, 53)]
        lean_identity(records[0], "cluster-p", "hsm-q")
        entries = [CloudWatchLogEvent(str(n), n, record) for n, record in enumerate(records)]
        run = parse.lean_lines(
            entries, 0, "cluster-p", "hsm-q", *EventEncoder().lean_parts("hsm-q", "hsm-q", None, "cluster-p")
        )
        assert run is not None
        assert run[1] == len(records)
        assert run[0].count(b"\n") == len(records)
        # GOOD's boot; its numbers 3..52 follow one another
        assert run[2:] == (parse_message(GOOD).reboot_counter, 52, 0)

    def test_it_declines_what_it_cannot_take(self) -> None:
        assert parse._lean_lines_c is not None
        entries = [CloudWatchLogEvent("0", 0, GOOD)]
        rest = (None, None, parse._STATIC, b"", b"", None, None)
        with pytest.raises(IndexError):
            parse._lean_lines_c(entries, 2, *rest)
        with pytest.raises(TypeError):
            parse._lean_lines_c(tuple(entries), 0, *rest)  # type: ignore[arg-type]
        with pytest.raises(OverflowError):  # records.parse.lean_lines passes None for these
            parse._lean_lines_c(entries, 0, None, None, parse._STATIC, b"", b"", -1, 5)
        # no `message`, or one that is not a str: left to the Python path, which says what it is
        assert parse._lean_lines_c([object(), *entries], 0, *rest) == (b"", 0, None, None, 0)
        assert parse._lean_lines_c([CloudWatchLogEvent("0", 0, 5)], 0, *rest) == (b"", 0, None, None, 0)  # type: ignore[arg-type]
        with _without_the_extension():
            assert parse.lean_lines(entries, 0, None, None, b"", b"") is None

    def test_an_entry_that_empties_its_list_is_no_crash(self) -> None:
        parse_message(GOOD)

        class Shrinking:
            @property
            def message(self) -> str:
                entries.clear()
                return GOOD

        entries: list[object] = [Shrinking(), CloudWatchLogEvent("1", 1, GOOD)]
        lines, stop, *_ = parse._lean_lines_c(entries, 0, None, None, parse._STATIC, b"", b"", None, None)
        assert (lines.count(b"\n"), stop) == (1, 1)  # the first record's line; then the list is gone


# Sequence numbers close together (gaps, repeats, going back), two boots, and the 64-bit edge.
POSITIONS = st.tuples(
    st.sampled_from([0x107, 0x108]), st.one_of(st.integers(0, 12), st.sampled_from([2**64 - 2, 2**64 - 1]))
)


@st.composite
def numbered_stream(draw: st.DrawFn) -> list[str]:
    records = []
    for reboot, sequence in draw(st.lists(POSITIONS, max_size=14)):
        event = msgspec.structs.replace(draw(text_events()), reboot_counter=reboot, sequence_no=sequence)
        record = render_text_record(event, draw(st.sampled_from(SEPARATORS)))
        records.append(record if draw(st.integers(0, 6)) else record.replace("Opcode", "Opcod"))
    return records


@pytest.mark.skipif(not parse.FAST_SCAN_COMPILED, reason="records/_scan.c not built (no C compiler)")
class TestTheStreamOrderIsThePythonPath:
    """`lean_lines` follows the stream's order as the subscription Lambda's Python loop does."""

    @settings(max_examples=300, deadline=None)
    @given(
        numbered_stream(), st.sampled_from([None, (0x107, 3), (0x108, 2**64 - 1), (0x107, 2**70), (2**80, 1)])
    )
    def test_the_gaps_and_last_position_of_a_run(
        self, records: list[str], last: tuple[int, int] | None
    ) -> None:
        for record in records:
            parse_message(record)  # the Python path remembers each repeating part
        entries = [CloudWatchLogEvent(str(n), n, record) for n, record in enumerate(records)]
        reboot, sequence = last if last is not None else (None, None)
        run = parse.lean_lines(entries, 0, "cluster-p", "hsm-q", b"", b"", reboot, sequence)
        assert run is not None
        _lines, stop, got_reboot, got_sequence, got_gaps = run
        gaps = 0
        for record in records[:stop]:
            event = parse_message(record)
            number, counter = event.sequence_no, event.reboot_counter
            assert number is not None and counter is not None
            if counter == reboot and sequence is not None and number > sequence + 1:
                gaps += number - sequence - 1
            reboot, sequence = counter, number
        assert (got_reboot, got_sequence, got_gaps) == (reboot, sequence, gaps)

    @settings(max_examples=200, deadline=None)
    @given(numbered_stream(), st.sampled_from(["lean", "json"]), st.booleans())
    def test_document_lines_are_the_same_without_the_extension(
        self, records: list[str], event_format: str, follow_order: bool
    ) -> None:
        document = SubscriptionDocument(
            message_type="DATA_MESSAGE",
            log_group="/aws/cloudhsm/cluster-p",
            log_stream="hsm-q",
            log_events=[CloudWatchLogEvent(str(n), n, record) for n, record in enumerate(records)],
        )

        def run() -> tuple[bytes, LineCounts]:
            counts = LineCounts()
            encoder = EventEncoder(event_format=event_format)  # type: ignore[arg-type]
            chunks = list(document_lines(document, encoder=encoder, counts=counts, follow_order=follow_order))
            assert all(chunk.endswith(b"\n") for chunk in chunks)
            return b"".join(chunks), counts

        with_c = run()
        with _without_the_extension():
            without = run()
        assert with_c == without
        # and both are what parsing every record in full gives (the subscription loop before)
        encoder = EventEncoder(event_format=event_format)  # type: ignore[arg-type]
        events = [
            parse_message(
                e.message,
                log_group="/aws/cloudhsm/cluster-p",
                log_stream="hsm-q",
                cwl_id=e.id,
                cwl_timestamp=e.timestamp,
            )
            for e in document.log_events
        ]
        gaps, last = 0, (None, None)
        for event in events:
            if event.sequence_no is not None and event.reboot_counter is not None:
                if (
                    event.reboot_counter == last[0]
                    and last[1] is not None
                    and event.sequence_no > last[1] + 1
                ):
                    gaps += event.sequence_no - last[1] - 1
                last = (event.reboot_counter, event.sequence_no)
        assert with_c[0] == b"".join(encoder.line(event) + b"\n" for event in events)
        assert with_c[1] == LineCounts(
            len(records), sum(e.parse_error is not None for e in events), gaps if follow_order else 0
        )

    def test_hostile_gaps_sum_past_64_bits(self) -> None:
        """Boots alternating with numbers at both ends: the sum outgrows 64 bits, exactly."""
        low, high = GOOD.replace("0x3\n", "0x0\n", 1), GOOD.replace("0x3\n", f"{2**64 - 1:#x}\n", 1)
        other = GOOD.replace("Reboot counter : 0xe8", "Reboot counter : 0xe9")
        records = [low, high, other] * 4
        parse_message(GOOD)
        parse_message(other)
        entries = [CloudWatchLogEvent(str(n), n, record) for n, record in enumerate(records)]
        run = parse.lean_lines(entries, 0, "cluster-p", "hsm-q", b"", b"")
        assert run is not None
        assert run[1] == len(records)
        assert run[4] == 4 * (2**64 - 2)


def parse_c_blake2b(data: bytes) -> str:
    from hsmaudit.records._scan import blake2b_128

    return blake2b_128(data)
