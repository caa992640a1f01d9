"""Shared test set-up: installed plugins are never loaded into the test process itself.

Tests that exercise entry-point loading run ``llavidal`` in a subprocess with their own environment.
"""

import importlib.metadata
import os
import sys
from pathlib import Path

import pytest

from web_page import browser  # noqa: F401 - the headless Chromium fixture of the web-page tests

os.environ["LLAVIDAL_LOAD_PLUGINS"] = ""

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real media of ../shared/data; tests using it skip where a clone has no such folder."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test media not found at {SHARED_DATA} (only the project's own checkout has them)")
    return SHARED_DATA


class DistributionFactory:
    """Lays out installed distributions (dist-info + modules) in a folder, as pip would, for entry-point tests."""

    def __init__(self, root: Path):
        self.root = root
        self.modules: set[str] = set()
        root.mkdir(parents=True, exist_ok=True)

    def add(self, distribution: str, modules: dict[str, str], entry_points: dict[str, str], version="1.0") -> None:
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(source)
            self.modules.add(module)
        info = self.root / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        lines = ["[llavidal]"] + [f"{name} = {target}" for name, target in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")

    def add_cue_plugin(self, distribution: str, cue_name: str, *, raise_at_import: str | None = None) -> None:
        """A distribution whose one plugin module registers the cue ``cue_name`` (or raises at import)."""
        module = distribution.replace("-", "_")
        if raise_at_import:
            source = f"raise RuntimeError({raise_at_import!r})\n"
        else:
            source = (
                "from llavidal_core import CueSpec, hookimpl\n"
                f"SPEC = CueSpec(name={cue_name!r}, placeholder='<{cue_name}>', patch_token='<{cue_name}_patch>',\n"
                "               feature_dim=4, num_tokens=2)\n"
                "@hookimpl\n"
                "def llavidal_register_cues(register):\n"
                "    register(SPEC)\n"
            )
        self.add(distribution, {module: source}, {cue_name: module})


@pytest.fixture
def distributions(tmp_path, monkeypatch):
    """A `DistributionFactory` whose folder is on sys.path; LLAVIDAL_LOAD_PLUGINS is unset for the test.

    Entry points are looked up in that folder only, so plugins installed in the environment stay out.
    """
    factory = DistributionFactory(tmp_path / "site")
    monkeypatch.syspath_prepend(str(factory.root))

    def entry_points_in_factory(group):
        found = importlib.metadata.distributions(path=[str(factory.root)])
        return [ep for dist in found for ep in dist.entry_points if ep.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points_in_factory)
    monkeypatch.delenv("LLAVIDAL_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("LLAVIDAL_STRICT_PLUGINS", raising=False)
    yield factory
    for module in factory.modules:
        sys.modules.pop(module, None)

