"""Loading a saved llavidal model by transformers' Auto classes in a fresh process, after importing only the public
API: the model's or the processor's module."""

import subprocess
import sys

import pytest

from llavidal_core.testing.tiny_fusion import build_tiny_llavidal

LOAD = """
import {module}
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor
folder = {folder!r}
for auto in (AutoModelForImageTextToText, AutoModelForCausalLM):
    print(auto.__name__, type(auto.from_pretrained(folder)).__name__)
print("AutoProcessor", type(AutoProcessor.from_pretrained(folder)).__name__)
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model, processor = build_tiny_llavidal()
    model.save_pretrained(folder, processor=processor)
    return folder


@pytest.mark.parametrize("module", ["llavidal_core.modeling", "llavidal_core.processing"])
def test_auto_classes_load_a_saved_model_after_the_public_import(saved, module):
    result = subprocess.run([sys.executable, "-c", LOAD.format(module=module, folder=str(saved))],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == [
        "AutoModelForImageTextToText LlavidalForConditionalGeneration",
        "AutoModelForCausalLM LlavidalForConditionalGeneration",
        "AutoProcessor LlavidalProcessor"]
