"""A straightforward re-implementation of the original extraction script (save_spatio_temporal_clip_features.py
of Video-ChatGPT / LLAVIDAL), one video at a time: decord → segment midpoints → nearest 224² → transformers'
PIL CLIP processor → the whole tower with all hidden states → ``hidden_states[-2][:, 1:]`` → float16 → numpy
pooling. The video plugin's parity tests compare against it and ``benchmarks/bench_video_extract.py`` times
it. Needs decord (a llavidal-video dependency).
"""

import math

import numpy as np
import torch
from PIL import Image


def get_seq_frames(total_num_frames, desired_num_frames):
    seg_size = float(total_num_frames - 1) / desired_num_frames
    return [(int(np.round(seg_size * i)) + int(np.round(seg_size * (i + 1)))) // 2 for i in range(desired_num_frames)]


def load_video(vis_path, num_frm=100):
    from decord import VideoReader, cpu

    vr = VideoReader(str(vis_path), ctx=cpu(0))
    total_frame_num = len(vr)
    total_num_frm = min(total_frame_num, num_frm)
    frame_idx = get_seq_frames(total_frame_num, total_num_frm)
    img_array = vr.get_batch(frame_idx).asnumpy()
    h, w = 224, 224
    if img_array.shape[-3] != h or img_array.shape[-2] != w:
        img_array = torch.from_numpy(img_array).permute(0, 3, 1, 2).float()
        img_array = torch.nn.functional.interpolate(img_array, size=(h, w))
        img_array = img_array.permute(0, 2, 3, 1).to(torch.uint8).numpy()
    return [Image.fromarray(img_array[j]) for j in range(total_num_frm)]


def get_spatio_temporal_features(features, num_temporal_tokens=100):
    t, s, c = features.shape
    temporal_tokens = np.mean(features, axis=1)
    padding_size = num_temporal_tokens - t
    if padding_size > 0:
        temporal_tokens = np.pad(temporal_tokens, ((0, padding_size), (0, 0)), mode="constant")
    spatial_tokens = np.mean(features, axis=0)
    return np.concatenate([temporal_tokens, spatial_tokens], axis=0)


def load_original_models(clip_dir, dtype=torch.float32):
    """The original's image processor (openai/clip-vit-large-patch14's settings are the defaults) and tower, in
    ``dtype`` (the original ran float16 on a GPU; timing ours against it is fair only at the same precision)."""
    from transformers import CLIPImageProcessorPil, CLIPVisionModel

    return CLIPImageProcessorPil(), CLIPVisionModel.from_pretrained(clip_dir, dtype=dtype).eval()


def original_extraction(video_path, image_processor, vision_tower, num_frames=100, infer_batch=48):
    """The original's main loop for one video, in the tower's dtype and device (the original: float16 on a GPU).

    Returns its float16 (356, D) output and the float32 layer features it was pooled from."""
    video = load_video(video_path, num_frames)
    video_tensor = image_processor.preprocess(video, return_tensors="pt")["pixel_values"]
    n_chunk = len(video_tensor)
    config = vision_tower.config
    video_features = torch.FloatTensor(n_chunk, (config.image_size // config.patch_size) ** 2, config.hidden_size)
    with torch.no_grad():
        for i in range(int(math.ceil(n_chunk / float(infer_batch)))):
            batch = video_tensor[i * infer_batch:(i + 1) * infer_batch]
            image_forward_outs = vision_tower(batch.to(vision_tower.device, vision_tower.dtype), output_hidden_states=True)
            video_features[i * infer_batch:(i + 1) * infer_batch] = image_forward_outs.hidden_states[-2][:, 1:].float().cpu()
    return get_spatio_temporal_features(video_features.numpy().astype("float16")), video_features
