"""The one set of words that mean true or false: settings values and the record's `MFA` label.

Layer 0 (stdlib only, imports nothing), so `config` and `records` share it without importing each
other. The order of the tuples is the order the generated Splunk `EVAL-mfa_enabled` lists them in
(`splunk/knowledge/evals.py`), so props.conf stays byte-identical. Callers compare the stripped or
lowered text themselves (the parser lowers only; settings strip and lower).
"""

from __future__ import annotations

from typing import Final

TRUE_WORDS: Final = ("yes", "true", "enabled", "1", "on")
FALSE_WORDS: Final = ("no", "false", "disabled", "0", "off")

TRUE: Final = frozenset(TRUE_WORDS)
"""`TRUE_WORDS` for membership tests."""
FALSE: Final = frozenset(FALSE_WORDS)
"""`FALSE_WORDS` for membership tests."""
