"""Shared test set-up: installed plugins are never loaded into the test process itself.

Tests that exercise entry-point loading run ``llavidal`` in a subprocess with their own environment.
"""

import os
from pathlib import Path

import pytest

os.environ["LLAVIDAL_LOAD_PLUGINS"] = ""

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real media of ../shared/data; tests using it skip where a clone has no such folder."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test media not found at {SHARED_DATA} (only the project's own checkout has them)")
    return SHARED_DATA
