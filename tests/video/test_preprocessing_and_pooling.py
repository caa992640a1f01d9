"""Preprocessing (fast == reference to the bit) and pooling (the original's numpy code, and the others)."""

import numpy as np
import pytest
import torch

from llavidal_video.pooling import (pool_features, pooled_rows, spatial_pool, videochatgpt_pool,
                                    videochatgpt_pool_reference)
from llavidal_video.preprocessing import (NearestResize, clip_normalization_table, normalize_fast,
                                          normalize_reference, reference_image_processor)


def test_nearest_resize_on_uint8_picks_the_original_float_pixels():
    chunk = np.random.default_rng(0).integers(0, 256, size=(3, 270, 480, 3), dtype=np.uint8)
    fast, exact = NearestResize(224)(chunk), NearestResize(224, exact_float=True)(chunk)
    assert fast.dtype == exact.dtype == torch.uint8 and fast.shape == (3, 3, 224, 224)
    assert torch.equal(fast, exact)
    square = np.zeros((2, 224, 224, 3), dtype=np.uint8)
    assert NearestResize(224)(square).shape == (2, 3, 224, 224)


def test_fast_normalization_is_bit_identical_to_the_pil_processor():
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, size=(4, 3, 224, 224), dtype=np.uint8))
    frames[0, :, 0, :256 - 224 + 32] = torch.arange(256 - 224 + 32, dtype=torch.uint8)
    reference = normalize_reference(frames, reference_image_processor(224))
    fast = normalize_fast(frames, clip_normalization_table())
    assert reference.dtype == fast.dtype == torch.float32
    assert torch.equal(fast, reference)


def test_the_torchvision_processor_of_transformers_5_agrees_too():
    pytest.importorskip("torchvision")
    from transformers import CLIPImageProcessor

    frames = torch.from_numpy(np.random.default_rng(2).integers(0, 256, size=(2, 3, 224, 224), dtype=np.uint8))
    torchvision_backed = CLIPImageProcessor()(list(frames), return_tensors="pt")["pixel_values"]
    assert torch.allclose(normalize_fast(frames, clip_normalization_table()), torchvision_backed, atol=1e-6)


def test_normalize_fast_refuses_float_input():
    with pytest.raises(ValueError, match="uint8"):
        normalize_fast(torch.zeros(1, 3, 4, 4), clip_normalization_table())


def test_videochatgpt_pool_matches_the_original_and_its_naming_trap():
    features = torch.randn(72, 16, 8)
    pooled = videochatgpt_pool(features, 100)
    assert pooled.shape == (116, 8)
    assert torch.allclose(pooled[:72], features.mean(dim=1))  # "temporal" rows: one per frame, mean over patches
    assert torch.equal(pooled[72:100], torch.zeros(28, 8))  # zero padding up to 100 frames
    assert torch.allclose(pooled[100:], features.mean(dim=0))  # "spatial" rows: one per patch, mean over time
    original = videochatgpt_pool_reference(features.numpy(), 100)
    assert np.allclose(pooled.numpy(), original, atol=1e-6)


def test_reference_pool_in_float16_is_the_original_numpy_to_the_bit():
    features = np.random.default_rng(3).standard_normal((40, 16, 8)).astype(np.float16)
    temporal = np.mean(features, axis=1)
    temporal = np.pad(temporal, ((0, 60), (0, 0)), mode="constant")
    expected = np.concatenate([temporal, np.mean(features, axis=0)], axis=0)
    result = videochatgpt_pool_reference(features, 100)
    assert result.dtype == np.float16 and np.array_equal(result, expected)


def test_none_and_spatial_pooling_shapes():
    features = torch.randn(3, 16, 8)  # 3 frames of a 4x4 grid
    assert pool_features(features, "none", 5).shape == (5 * 16, 8) == (pooled_rows("none", 5, 16), 8)
    spatial = pool_features(features, "spatial", 5, stride=2)
    assert spatial.shape == (5 * 4, 8) == (pooled_rows("spatial", 5, 16, 2), 8)
    first_cell = features[0].reshape(4, 4, 8)[:2, :2].reshape(-1, 8).mean(0)
    assert torch.allclose(spatial[0], first_cell, atol=1e-6)
    assert torch.equal(spatial[12:], torch.zeros(8, 8))  # frames 4 and 5 are padding
    assert spatial_pool(torch.randn(1, 256, 4), 1, 3).shape == (36, 4)  # 16x16 grid, stride 3, ceil mode
    with pytest.raises(ValueError, match="square"):
        pool_features(torch.randn(2, 15, 8), "spatial", 2)
    with pytest.raises(ValueError, match="0 < T <= 2"):
        pool_features(torch.randn(3, 16, 8), "videochatgpt", 2)
