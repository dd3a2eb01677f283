"""Fixtures every test tier shares: the repository's sample records and the optional shared sink.

The published sample records live in the repository (`tests/data/samples`, sources in its
README), so a fresh clone tests on its own. One thing is optional: the independent HEC sink
(`<repo>/../shared/tools/hec_sink.py`, written by another team), which CI lays beside the
checkout. Tests that cross-check against it skip with one line when it is absent;
`HSMAUDIT_SHARED_DIR` points elsewhere (an empty directory forces the skip path).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT / "tests" / "data" / "samples"
SHARED_DIR = Path(os.environ.get("HSMAUDIT_SHARED_DIR", REPO_ROOT.parent / "shared"))
HEC_SINK = SHARED_DIR / "tools" / "hec_sink.py"
HEC_SINK_ABSENT = f"independent HEC sink not found at {HEC_SINK}: cross-check skipped"


def require_hec_sink() -> Path:
    """The independent sink's path, or skip the calling test (it is optional outside CI)."""
    if not HEC_SINK.is_file():
        pytest.skip(HEC_SINK_ABSENT)
    return HEC_SINK


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root directory."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """`tests/data/samples`: real published records and their expected parse."""
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def hec_sink_script() -> Path:
    """`../shared/tools/hec_sink.py`: the independent HEC sink with fault injection (optional)."""
    return require_hec_sink()


# Fixtures through which a test reads the sample records, delivers to our own loopback HEC (the
# delivery tests, which once needed the independent sink) or cross-checks against the
# independent sink.
_STANDALONE_FIXTURES = frozenset(
    {"samples_dir", "loopback_hec", "start_hec", "hec_sink", "hec_sink_script", "start_sink", "sink"}
)


# Fixtures that need the independent sink: only cross-checks may use them (they skip on a fresh
# clone), and a cross-check says so in its name (`..._independent_...`, `[independent]`).
_INDEPENDENT_SINK_FIXTURES = frozenset({"hec_sink", "hec_sink_script", "start_sink"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that needs the independent sink but is not named as a cross-check is a usage
    error: it would skip on a fresh clone while testing our own code (use `loopback_hec` or
    `start_hec`). `HSMAUDIT_STANDALONE_SUBSET=1`: keep only the tests that use sample data,
    deliver to a loopback HEC or cross-check against the independent sink. `.ci/run` runs that
    subset once more in a copy of the checkout with nothing beside it, which proves a fresh clone
    needs nothing outside the repository: only the cross-checks skip there."""
    hidden = [
        item.nodeid
        for item in items
        if _INDEPENDENT_SINK_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        and "independent" not in item.nodeid
    ]
    if hidden:
        raise pytest.UsageError(
            "these tests need the independent HEC sink but are not cross-checks (name them "
            f"..._independent_..., or use loopback_hec / start_hec): {', '.join(hidden)}"
        )
    if os.environ.get("HSMAUDIT_STANDALONE_SUBSET") != "1":
        return
    kept, dropped = [], []
    for item in items:
        uses = _STANDALONE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        (kept if uses else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
