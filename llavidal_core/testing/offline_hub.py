"""An offline Hugging Face Hub cache laid out on disk, so that ``from_pretrained("org/name")`` resolves a
repo id exactly as it does for a user with ``HF_HUB_OFFLINE=1`` (refs/main → snapshots/<sha>/<files>)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path


class OfflineHub:
    def __init__(self, cache_dir: Path):
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def add(self, repo_id: str, folder: str | Path) -> str:
        """Publish ``folder``'s files as the ``main`` revision of ``repo_id``; returns the commit sha."""
        sha = hashlib.sha1(repo_id.encode("utf-8")).hexdigest()
        repo = self.cache_dir / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(sha)
        shutil.copytree(folder, repo / "snapshots" / sha, dirs_exist_ok=True)
        return sha

    def activate(self, monkeypatch) -> None:
        """Point huggingface_hub (and so transformers) at this cache, offline, for the test."""
        import huggingface_hub

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("HF_HUB_CACHE", str(self.cache_dir))
        # both read these once at import: patch the constants they consult
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(self.cache_dir))
