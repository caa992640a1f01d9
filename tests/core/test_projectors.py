"""The built-in projectors: shapes and state-dict keys (LLAVIDAL's linear, LLaVA-1.5's mlp2x_gelu)."""

import torch

from llavidal_core.plugins import build_projector


def test_linear_projector_matches_llavidal_layout(llavidal_plugins):
    projector = build_projector("linear", 216, 32)
    assert set(projector.state_dict()) == {"weight", "bias"}
    assert projector.weight.shape == (32, 216)
    assert projector(torch.zeros(2, 256, 216)).shape == (2, 256, 32)


def test_mlp2x_gelu_projector_matches_llava_layout(llavidal_plugins):
    projector = build_projector("mlp2x_gelu", 1024, 32)
    assert set(projector.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    features = torch.randn(3, 1024)
    expected = projector[2](torch.nn.functional.gelu(projector[0](features)))
    assert torch.allclose(projector(features), expected)
