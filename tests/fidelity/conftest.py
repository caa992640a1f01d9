"""Shared paths of the fidelity tests: values made by the original LLAVIDAL code (see make_original_expected.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
BASE = DATA / "llava_lightening_tiny"


@pytest.fixture(scope="session")
def expected_tokenization() -> dict:
    return json.loads((DATA / "expected_tokenization.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def original_tokenizer():
    """The tiny LLaVA-Lightening-like base's tokenizer (``tokenizer.model`` only), loaded as users load it."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(BASE)
