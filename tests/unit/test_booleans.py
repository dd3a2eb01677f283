"""One true/false word set (issue 14, item 4): settings, the parser's MFA label and Splunk's EVAL agree."""

from __future__ import annotations

import pytest

from hsmaudit.booleans import FALSE, FALSE_WORDS, TRUE, TRUE_WORDS
from hsmaudit.config import load_settings
from hsmaudit.records.parse import parse_message
from hsmaudit.splunk.knowledge import text_conversions


def test_the_sets_are_disjoint_lower_case_and_match_their_tuples() -> None:
    assert TRUE.isdisjoint(FALSE)
    assert all(word == word.lower() for word in TRUE_WORDS + FALSE_WORDS)
    assert frozenset(TRUE_WORDS) == TRUE and frozenset(FALSE_WORDS) == FALSE


@pytest.mark.parametrize(
    ("word", "value"), [(w, True) for w in TRUE_WORDS] + [(w, False) for w in FALSE_WORDS]
)
def test_a_boolean_setting_takes_every_word_of_the_set(word: str, value: bool) -> None:
    assert load_settings(environ={"HSMAUDIT_INCLUDE_RAW": f" {word.upper()} "}).include_raw is value


def test_splunk_reads_the_same_words_as_the_parser() -> None:
    (mfa,) = [line for line in text_conversions() if line.startswith("EVAL-mfa_enabled")]
    assert all(f'"{word}"' in mfa for word in TRUE_WORDS + FALSE_WORDS)
    assert mfa == (
        'EVAL-mfa_enabled = case(in(lower(hsmaudit_mfa), "yes", "true", "enabled", "1", "on"), "true", '
        'in(lower(hsmaudit_mfa), "no", "false", "disabled", "0", "off"), "false")'
    )


RECORD = """Time: 04/22/22 10:11:12.123456, usecs:1650622272123456
Opcode : CN_CHANGE_PSWD (0x9)
Command Type(hex) : CN_MGMT_CMD (0x0)
Sequence No : 0x10
Reboot counter : 0x2
Session Handle : 0x1
Response : 0:HSM Return: SUCCESS
Log type : MGMT_USER_DETAILS_LOG (2)
User Name : officer1
User Type : CN_CRYPTO_OFFICER (2)
Mfa enabled : {word}"""


@pytest.mark.parametrize(
    ("word", "value"), [(w, True) for w in TRUE_WORDS] + [(w, False) for w in FALSE_WORDS]
)
def test_the_parser_reads_every_word_of_the_set_as_the_mfa_flag(word: str, value: bool) -> None:
    event = parse_message(RECORD.format(word=word.upper()))
    assert event.parse_error is None
    assert event.mfa_enabled is value
