"""Fixtures every test tier shares: where the shared reference data and tools live.

CI lays `shared/` beside the checkout (`<repo>/../shared`), as on the developers' machines;
`HSMAUDIT_SHARED_DIR` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("HSMAUDIT_SHARED_DIR", REPO_ROOT.parent / "shared"))
SAMPLES_DIR = SHARED_DIR / "data" / "samples"
HEC_SINK = SHARED_DIR / "tools" / "hec_sink.py"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root directory."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """`shared/data/samples`: real published records and their expected parse."""
    if not SAMPLES_DIR.is_dir():
        pytest.fail(f"shared samples not found at {SAMPLES_DIR} (set HSMAUDIT_SHARED_DIR)")
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def hec_sink_script() -> Path:
    """`shared/tools/hec_sink.py`: the independent HEC sink with fault injection."""
    if not HEC_SINK.is_file():
        pytest.fail(f"hec_sink.py not found at {HEC_SINK} (set HSMAUDIT_SHARED_DIR)")
    return HEC_SINK
