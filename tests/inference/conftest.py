"""Shared fixtures of the inference tests: a tiny saved model whose one cue is a fake "video" cue."""

import dataclasses

import pytest
import torch

from llavidal_core import hookimpl
from llavidal_core.testing.fake_cue import FAKE_CUE_SPEC

# the fake cue's encoder, registered under the name "video" so that the pipeline's video= shorthand applies
FAKE_VIDEO = dataclasses.replace(FAKE_CUE_SPEC, name="video", placeholder="<video>", patch_token="<vid_patch>",
                                 start_token="<vid_start>", end_token="<vid_end>")


class FakeVideoPlugin:
    @hookimpl
    def llavidal_register_cues(self, register):
        register(FAKE_VIDEO, encoder="llavidal_core.testing.fake_cue_encoder:FakeCueEncoder")


@pytest.fixture
def fake_video_plugins(llavidal_plugins):
    llavidal_plugins.register(FakeVideoPlugin(), name="video", distribution="llavidal-video-fake", version="0.0.1")
    return llavidal_plugins


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory):
    """A tiny llavidal model with the fake cue, its processor, and its encoder, saved as a user would."""
    from llavidal_core.modeling import LlavidalForConditionalGeneration
    from llavidal_core.processing import LlavidalProcessor
    from llavidal_core.testing.fake_cue_encoder import FakeCueEncoder
    from llavidal_core.testing.tiny_models import build_tiny_causal_lm, build_tiny_tokenizer

    root = tmp_path_factory.mktemp("pipeline")
    torch.manual_seed(0)
    FakeCueEncoder().save_pretrained(root / "encoder")
    processor = LlavidalProcessor(build_tiny_tokenizer(), [FAKE_VIDEO])
    model = LlavidalForConditionalGeneration.from_language_model(
        build_tiny_causal_lm(seed=3), [FAKE_VIDEO], processor.cue_token_ids,
        cue_encoders={"video": str(root / "encoder")},
    )
    model.save_pretrained(root / "model", processor=processor)
    videos = []
    for index in range(4):
        video = root / f"clip_{index}.mp4"
        video.write_bytes(b"not decoded: the fake cue hashes the path")
        videos.append(str(video))
    return root / "model", videos
