"""Step 3 of ADL-X curation: captions of sampled frames of each (stitched) video by an image-text-to-text model.

Copies ADL-X/LLAVIDAL ``adlx_curation/step3_image_frame_captions.py``:

- frames: ``n = int(frames / fps / 0.5)`` (at least 1) indices ``np.linspace(0, frames - 1, n, dtype=int)``
  (`caption_frame_indices`), i.e. two captions per second of video;
- prompt: `CAPTION_QUERY`, the original's CogVLM query; a model whose processor has a chat template gets
  the question alone as a user turn holding the image (`CAPTION_QUESTION`), the template adding the roles;
- greedy decoding, ``max_new_tokens=256``.

Unlike the original (CogVLM only, one frame at a time, fp16 on ``cuda:N``), any transformers
``AutoModelForImageTextToText`` model (a folder or a Hub id) runs, on any device and dtype, ``batch_size``
frames per ``generate``. A video that fails is reported by the step runner, not written with an error text
as the caption (the original stores ``"failed to get caption with exception ..."``).

Output per video: ``OUT/<id>.json`` = ``{"video_id", "video", "frame_indices", "fps", "captions": [str]}``;
`merge_captions` writes ``OUT/captions.json`` = ``{id: [captions]}``, the original's ``cogvlm_*.json`` format.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llavidal_core.errors import LlavidalError

logger = logging.getLogger(__name__)

CAPTION_RATE = 0.5
"""The original's ``caption_rate_fps``: seconds of video per caption (despite its name)."""
CAPTION_QUESTION = ("Give a detailed description of the actions happening and describe the image, include motions "
                    "and the objects interacted by the person. Do not provide any coordinates from the image")
CAPTION_QUERY = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                 "helpful, detailed, and polite answers to the user's questions. USER: " + CAPTION_QUESTION
                 + " ASSISTANT:")
DEFAULT_MAX_NEW_TOKENS = 256
MERGED_FILE = "captions.json"


class CaptionFileError(LlavidalError):
    """A captions file cannot be read or is not in the step's format."""


def caption_frame_indices(total_frames: int, fps: float) -> list[int]:
    """The original's frame choice: ``max(1, int(total_frames / fps / 0.5))`` indices spread evenly over
    ``[0, total_frames - 1]`` (``np.linspace(..., dtype=int)``). ValueError for no frames or a non-positive fps."""
    if total_frames <= 0:
        raise ValueError("the video has no frames")
    if not fps or fps <= 0 or not np.isfinite(fps):
        raise ValueError(f"the video's frame rate is unknown ({fps!r}); cannot space captions in time")
    count = max(1, int(total_frames / fps / CAPTION_RATE))
    return [int(index) for index in np.linspace(0, total_frames - 1, count, dtype=int)]


class FrameCaptioner:
    """An image-text-to-text model and its processor, captioning PIL images with the original's prompt.

    ``model``: a folder or Hub id; ``device``/``dtype``: torch names (`llavidal_core.devices`: ``auto`` picks
    this rank's GPU else the CPU, and bfloat16/float16 on a GPU, float32 on a CPU). Raises `LlavidalError`
    naming the model when it cannot be loaded.
    """

    def __init__(self, model: str | Path, *, device: str | None = None, dtype: str | None = None,
                 batch_size: int = 8, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, local_rank: int = 0):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from llavidal_core.devices import choose_device, default_dtype

        if batch_size <= 0 or max_new_tokens <= 0:
            raise ValueError("batch_size and max_new_tokens must be positive")
        self.device = choose_device(device, local_rank)
        if dtype in (None, "auto"):
            self.dtype = default_dtype(self.device)
        else:
            self.dtype = getattr(torch, str(dtype), None)
            if not isinstance(self.dtype, torch.dtype):
                raise ValueError(f"unknown dtype {dtype!r} (float32, float16, bfloat16, auto)")
        try:
            self.processor = AutoProcessor.from_pretrained(str(model))
            self.model = AutoModelForImageTextToText.from_pretrained(str(model), dtype=self.dtype)
        except (OSError, ValueError, KeyError) as exc:
            raise LlavidalError(f"{model}: cannot load an image-text-to-text model and processor ({exc})") from exc
        self.model.to(self.device).eval()
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # batched generation of a decoder-only language model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.prompt = self._prompt()
        self.identity = str(model)

    def _prompt(self) -> str:
        """The text sent with each image: the chat template over the question when the processor has one,
        else the original's full CogVLM query."""
        if getattr(self.processor, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": CAPTION_QUESTION}]}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True)
        return CAPTION_QUERY

    def caption(self, images: Sequence) -> list[str]:
        """One caption per PIL image, ``batch_size`` images per ``generate`` (greedy)."""
        import torch

        captions: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = list(images[start:start + self.batch_size])
            inputs = self.processor(images=batch, text=[self.prompt] * len(batch), return_tensors="pt",
                                    padding=True)
            inputs = {name: (value.to(self.device, self.dtype) if value.is_floating_point() else value.to(self.device))
                      for name, value in inputs.items() if isinstance(value, torch.Tensor)}
            with torch.inference_mode():
                generated = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
            prompt_length = inputs["input_ids"].shape[1]
            if not self.model.config.is_encoder_decoder:
                generated = generated[:, prompt_length:]
            captions.extend(text.strip() for text in
                            self.processor.batch_decode(generated, skip_special_tokens=True))
        return captions


def caption_video(captioner: FrameCaptioner, path: str | Path, *, decoder: str = "auto") -> dict:
    """The step's record for one video: its sampled frames (`caption_frame_indices`) captioned.

    Raises `llavidal_video.decoding.VideoDecodeError` naming the file when it cannot be decoded.
    """
    from PIL import Image

    from llavidal_video.decoding import decode_video

    decoded = decode_video(path, caption_frame_indices, decoder=decoder)
    images = [Image.fromarray(frame.permute(1, 2, 0).numpy()).convert("RGB") for frame in decoded.frames]
    captions = captioner.caption(images)
    return {"video": str(path), "frame_indices": decoded.indices, "fps": decoded.fps, "captions": captions}


def read_caption_record(path: str | Path) -> list[str]:
    """The captions of one per-video file (``{"captions": [str, ...]}``) or `CaptionFileError` naming it."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CaptionFileError(f"{path}: cannot read the captions ({exc})") from None
    captions = record.get("captions") if isinstance(record, dict) else None
    if not isinstance(captions, list) or not captions or not all(isinstance(c, str) for c in captions):
        raise CaptionFileError(f"{path}: 'captions' must be a non-empty list of strings")
    return captions


def read_captions(source: str | Path) -> dict[str, list[str]]:
    """``{video_id: [captions]}`` from a caption step's folder (its per-video ``<id>.json`` files) or a merged
    file in the original's format (``{id: [captions]}``). `CaptionFileError` naming the file when malformed."""
    source = Path(source)
    if source.is_dir():
        found = {}
        for path in sorted(source.glob("*.json")):
            if path.name != MERGED_FILE:
                found[path.stem] = read_caption_record(path)
        if not found:
            raise CaptionFileError(f"{source}: no per-video caption files (<id>.json) in this folder")
        return found
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CaptionFileError(f"{source}: cannot read the captions ({exc})") from None
    if not isinstance(data, dict) or not all(
            isinstance(v, list) and v and all(isinstance(c, str) for c in v) for v in data.values()):
        raise CaptionFileError(f"{source}: expected {{video_id: [caption, ...]}} with non-empty caption lists")
    return data


def merge_captions(out: str | Path) -> Path:
    """Write ``OUT/captions.json`` (``{id: [captions]}``, sorted) from the per-video files, atomically."""
    from llavidal_curate.step_runner import write_json_atomic

    out = Path(out)
    return write_json_atomic(out / MERGED_FILE, read_captions(out))
