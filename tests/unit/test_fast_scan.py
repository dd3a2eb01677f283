"""The parser's fast-path match in C (records/_scan.c) is the regex it replaces, result for result.

`scan` must give exactly `_FAST_RECORD.match(m).groups()` (or None) for every ASCII message and
decline (NotImplemented) any other, so the parse is the same with or without the extension: checked
on generated records in every separator style, on records mutated a character at a time (blanks,
CR, colons, hex case, cut and doubled lines), on hostile lines, and through `parse_message` and
`lean_identity` with the extension switched off.
"""

from __future__ import annotations

import shutil
import sysconfig

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsmaudit.records import parse
from hsmaudit.records.parse import lean_identity, parse_message
from hsmaudit.records.render import SEPARATORS, render_text_record
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
        text = list(render_text_record(generated, style))
        for where, kind, character in edits:
            position = min(int(where * len(text)), len(text) - 1)
            if kind == 0:
                text.insert(position, character)
            elif kind == 1 and len(text) > 1:
                del text[position]
            else:
                text[position] = character
        _same("".join(text))

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
