"""pytest fixtures for llavidal and its plugins (loaded through llavidal-core's ``pytest11`` entry point).

- ``llavidal_plugins``: a fresh plugin manager holding only the core's built-ins, installed as the
  process-wide manager for the duration of the test (installed plugins are not loaded).
- ``fake_cue_plugins``: the same, with the fake cue registered.
- ``tiny_llm_dir``: a directory holding a tiny random Llama and its tokenizer (made once per session).
- ``tiny_llm``: ``(model, tokenizer)`` loaded from ``tiny_llm_dir`` with ``from_pretrained``.
- ``one_torch_thread``: torch limited to one intra-op thread for the test (tiny models gain nothing from
  threads, and on a shared CPU their spin-waits cost seconds per test); use it as an autouse fixture.
- ``offline_hub``: an `OfflineHub` cache, active and offline for the test: ``offline_hub.add("org/name", dir)``.

Heavy imports happen inside the fixtures, so merely having llavidal-core installed costs pytest nothing.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def llavidal_plugins():
    from llavidal_core.plugins import LlavidalPluginManager, set_plugin_manager

    manager = LlavidalPluginManager()
    previous = set_plugin_manager(manager)
    try:
        yield manager
    finally:
        set_plugin_manager(previous)


@pytest.fixture
def fake_cue_plugins(llavidal_plugins):
    from llavidal_core.testing.fake_cue import FakeCuePlugin

    llavidal_plugins.register(FakeCuePlugin(), name="fake", distribution="llavidal-fake", version="0.0.1")
    return llavidal_plugins


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory):
    from llavidal_core.testing.tiny_models import save_tiny_causal_lm

    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture
def tiny_llm(tiny_llm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval(), AutoTokenizer.from_pretrained(tiny_llm_dir)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    from llavidal_core.testing.offline_hub import OfflineHub

    hub = OfflineHub(tmp_path / "hub-cache")
    hub.activate(monkeypatch)
    return hub


@pytest.fixture
def one_torch_thread():
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
