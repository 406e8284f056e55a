"""The services' tests drive a real mock engine in the test process."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import CountingEngine, ready_engine


@pytest.fixture
def engine(tmp_path: Path) -> CountingEngine:
    """A linked mock engine that counts its sends and reactions."""
    engine: CountingEngine = ready_engine(tmp_path / "sessions" / "s1")
    return engine
