"""Shared set-up of the training tests: the tiny recipes' assets, written once per session."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A folder holding ``tiny/`` (LM, feature store, train.json): run the tiny recipes from here."""
    from llavidal_core.testing.tiny_training import write_tiny_training_assets

    root = tmp_path_factory.mktemp("tiny-training")
    write_tiny_training_assets(root / "tiny")
    return root


@pytest.fixture
def in_tiny_root(tiny_root, monkeypatch, llavidal_plugins):
    """The current directory is ``tiny_root``, with only the built-in plugins loaded."""
    monkeypatch.chdir(tiny_root)
    return tiny_root
