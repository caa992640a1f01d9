"""One GPU check of llavidal's three hot paths, timed in one process, printed as one markdown table + one JSON line.

Sections (every timing excludes a warm-up run; on CUDA each is bracketed by ``torch.cuda.synchronize``):

1. ``extract``: video features with a random ViT-L/14-size CLIP vision tower (224², patch 14, width 1024,
   24 blocks; ``save_pretrained`` to a temp folder) at 100 frames per video, on the real sample videos of
   ``../shared/data/videos`` (each linked several times under distinct names so that throughput, not
   latency, is measured; synthetic clips when that folder is absent):
   (a) ours: ``llavidal extract video`` run in-process (model load and DataLoader workers included), bfloat16;
   (b) the floor: ``VideoCueEncoder.encode_frames`` alone on frames decoded beforehand, bfloat16;
   (c) the original's serial method (``llavidal_video.testing.original_pipeline``, model load included), in
       float32 (as the check's reference) and in bfloat16 (like for like).
   Each as videos/s and frames/s, plus the throughput ratios ours/floor and ours/original, precisions named.
2. ``train``: one training step of the fused model (``LlavidalForConditionalGeneration`` around a random
   LLaMA-7B-size LM built directly on the device in bfloat16, LM frozen, the seed's three cue projectors
   training with AdamW) on 4 samples of 356 video + 16 object + 256 pose feature rows + ~200 text tokens:
   fused tokens/s and peak memory (GiB; CUDA: ``max_memory_allocated``, CPU: the process's peak RSS).
3. ``generate``: ``LlavidalPipeline`` answering 8 prompts with cue features (greedy, exactly 32 new tokens)
   in one batch vs one at a time, with the same fused model: generated tokens/s and the speed-up.

``--tiny`` (automatic without CUDA) runs the same code at transformers' test sizes (CLIP width 32, 2 blocks,
still 224² input; LLaMA width 32, 2 layers, vocab 99), 8 frames, 2 videos: a smoke test of seconds on a CPU.
``--budget-s`` stops starting steps that would not fit (each names what it skipped). Exit code: 0, or 1 when
a step failed (the others still ran; the failure is listed under the table and in the JSON).

    python benchmarks/gpu_check.py                      # on the GPU machine: under 8 minutes on one H200
    python benchmarks/gpu_check.py --tiny               # smoke test, seconds on a CPU
    python benchmarks/gpu_check.py --sections train generate --llm-layers 8 --budget-s 200
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import os
import pickle
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = REPO_ROOT.parent / "shared" / "data" / "videos"
SECTIONS = ("extract", "train", "generate")
COMPUTE_DTYPE = "bfloat16"  # ours, the floor, the fused model
ORIGINAL_DTYPES = ("float32", "bfloat16")  # the original's serial method: the reference and like for like
QUESTION = "What is the person doing in the video?"
ANSWER_SENTENCE = "The person drinks water from a cup, then answers a phone."
NUM_OBJECTS = 2  # objects per sample: 2 x 8 rows of the object cue


# -- sizes ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the GPU run and the ``--tiny`` smoke test (sizes, counts, estimates).

    ``clip``: `CLIPVisionConfig` keyword arguments; ``llm``: `LlamaConfig` keyword arguments (over
    `llavidal_core.testing.tiny_models.tiny_llama_config`, which sets the tiny tokenizer's special ids);
    ``estimates_s``: rough seconds each step needs, for the ``--budget-s`` guard.
    """

    name: str
    clip: dict[str, int]
    clip_label: str
    num_frames: int
    num_videos: int
    extract_repeats: int
    workers: int
    llm: dict[str, int]
    llm_label: str
    train_batch: int
    text_tokens: int
    train_steps: int
    gen_batch: int
    new_tokens: int
    gen_repeats: int
    estimates_s: dict[str, float]


GPU_SIZES = Sizes(
    name="gpu",
    clip=dict(image_size=224, patch_size=14, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
              num_attention_heads=16),
    clip_label="ViT-L/14-size CLIP",
    num_frames=100, num_videos=12, extract_repeats=2, workers=min(8, os.cpu_count() or 1),
    llm=dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
             num_attention_heads=32, num_key_value_heads=32),
    llm_label="LLaMA-7B-size",
    train_batch=4, text_tokens=200, train_steps=5, gen_batch=8, new_tokens=32, gen_repeats=2,
    estimates_s={"extract.setup": 30, "extract.floor": 15, "extract.ours": 40, "extract.original.float32": 50,
                 "extract.original.bfloat16": 45, "build": 30, "train": 20, "generate": 60},
)

TINY_SIZES = Sizes(
    name="tiny",
    clip=dict(image_size=224, patch_size=14, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
              num_attention_heads=4),
    clip_label="tiny CLIP (width 32, 2 blocks)",
    num_frames=8, num_videos=2, extract_repeats=1, workers=1,
    llm=dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2),
    llm_label="tiny LLaMA (width 32)",
    train_batch=4, text_tokens=200, train_steps=2, gen_batch=4, new_tokens=8, gen_repeats=1,
    estimates_s={"extract.setup": 3, "extract.floor": 1, "extract.ours": 4, "extract.original.float32": 2,
                 "extract.original.bfloat16": 2, "build": 1, "train": 1, "generate": 3},
)


# -- results ----------------------------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the table: ``values`` maps a unit (``"videos/s"``, ``"tokens/s"``, ``"x"``...) to a number."""

    key: str
    measurement: str
    precision: str
    seconds: float | None
    values: dict[str, float] = field(default_factory=dict)


def format_number(value: float) -> str:
    """Short human form: thousands separators from 100 up, 2 decimals from 1, 3 significant digits below."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def markdown_table(rows: list[Row]) -> str:
    """The rows as one markdown table: key | measurement | precision | seconds | result."""
    lines = ["| key | measurement | precision | seconds | result |", "|---|---|---|---:|---|"]
    for row in rows:
        seconds = "" if row.seconds is None else format_number(row.seconds)
        result = ", ".join(f"{format_number(value)} {unit}" for unit, value in row.values.items())
        lines.append(f"| {row.key} | {row.measurement} | {row.precision} | {seconds} | {result} |")
    return "\n".join(lines)


# -- timing -----------------------------------------------------------------------------------------------------

def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_seconds(run: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of ``run()``, the device's queued work included (synchronised before and after)."""
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def median_seconds(run: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``run()`` after one untimed warm-up call."""
    run()
    return statistics.median(timed_seconds(run, device) for _ in range(repeats))


class Budget:
    """Seconds left before ``--budget-s`` runs out, counted from construction."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()


# -- section 1: video extraction -----------------------------------------------------------------------------------

def save_random_clip(directory: Path, clip_config: dict[str, int], device: torch.device, seed: int = 0) -> Path:
    """Save a randomly initialised float32 `CLIPVisionModel` of ``clip_config`` (built on ``device``) to
    ``directory``, loadable with ``from_pretrained`` as a Hub checkpoint would be; returns ``directory``."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    with torch.device(device):
        model = CLIPVisionModel(CLIPVisionConfig(**clip_config)).eval()
    model.save_pretrained(directory)
    del model
    return directory


def source_videos(paths: list[Path] | None, scratch: Path) -> list[Path]:
    """The videos to extract: ``paths`` if given, else the shared sample videos
    (``llavidal_video.testing.videos.SHARED_DATA_VIDEOS``), else three synthetic clips written to ``scratch``."""
    from llavidal_video.testing.videos import SHARED_DATA_VIDEOS, write_test_video

    if paths:
        return [Path(path) for path in paths]
    shared = [SHARED_VIDEOS / name for name in SHARED_DATA_VIDEOS]
    if all(path.is_file() for path in shared):
        return shared
    scratch.mkdir(parents=True, exist_ok=True)
    return [write_test_video(scratch / "clip_a.mp4", num_frames=120, height=240, width=320, seed=1),
            write_test_video(scratch / "clip_b.avi", num_frames=72, height=480, width=640, codec="mpeg4", seed=2),
            write_test_video(scratch / "clip_c.mp4", num_frames=30, height=144, width=176, seed=3)]


def link_videos(sources: list[Path], count: int, folder: Path) -> list[Path]:
    """``count`` distinctly named symlinks (copies where links fail) in ``folder``, cycling through ``sources``:
    ``00_<name>``, ``01_<name>``, ... so that each is its own video id."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    links = []
    for index in range(count):
        source = Path(sources[index % len(sources)]).resolve()
        link = folder / f"{index:02d}_{source.name}"
        try:
            link.symlink_to(source)
        except OSError:
            shutil.copyfile(source, link)
        links.append(link)
    return links


@dataclass
class ExtractionSetup:
    """What the extraction steps share: the CLIP folder, the videos, and frames decoded beforehand.

    ``frames``: one uint8 ``(T, 3, S, S)`` tensor per video (``T`` = min(video length, ``num_frames``)),
    decoded with the encoder's own ``frame_source()``; ``encoder``: that `VideoCueEncoder` (CPU, bfloat16).
    """

    clip_dir: Path
    videos: list[Path]
    frames: list[torch.Tensor]
    encoder: Any
    scratch: Path

    @property
    def total_frames(self) -> int:
        return sum(len(frames) for frames in self.frames)


def prepare_extraction(sizes: Sizes, device: torch.device, scratch: Path, paths: list[Path] | None) -> ExtractionSetup:
    """Save the random CLIP, link ``sizes.num_videos`` videos and decode each distinct file once."""
    from llavidal_video.encoder import VideoCueEncoder

    clip_dir = save_random_clip(scratch / "clip", sizes.clip, device)
    videos = link_videos(source_videos(paths, scratch / "generated"), sizes.num_videos, scratch / "videos")
    encoder = VideoCueEncoder.from_pretrained(clip_dir, num_frames=sizes.num_frames,
                                              dtype=getattr(torch, COMPUTE_DTYPE))
    source = encoder.frame_source()
    decoded: dict[Path, torch.Tensor] = {}
    for video in videos:
        real = video.resolve()
        if real not in decoded:
            decoded[real] = source(video).frames
    return ExtractionSetup(clip_dir, videos, [decoded[video.resolve()] for video in videos], encoder, scratch)


def floor_seconds(setup: ExtractionSetup, device: torch.device, repeats: int) -> float:
    """Median seconds of `VideoCueEncoder.encode_frames` over all of ``setup.frames`` (encoder only: no
    decoding, no writing), warm-up excluded."""
    encoder = setup.encoder = setup.encoder.to(device)

    def run():
        for frames in setup.frames:
            encoder.encode_frames(frames)

    return median_seconds(run, device, repeats)


def ensure_video_command() -> None:
    """Make sure the process-wide plugin manager has ``llavidal extract video`` (register the video plugin
    when the installed plugins were not loaded, as in tests that isolate their manager)."""
    from llavidal_core.plugins import get_plugin_manager

    manager = get_plugin_manager()
    if ("extract", "video") not in manager.commands():
        import llavidal_video.plugin
        from llavidal_video import __version__

        manager.register(llavidal_video.plugin, name="video", distribution="llavidal-video", version=__version__)


def run_extract_command(videos: list[Path], out: Path, clip_dir: Path, num_frames: int, dtype: str,
                        device: torch.device, workers: int) -> None:
    """``llavidal extract video`` in this process (``llavidal_core.cli.main``), its stderr captured.

    Raises:
        RuntimeError: the command exited non-zero; the message holds its stderr.
    """
    from llavidal_core.cli import main as llavidal

    ensure_video_command()
    argv = ["extract", "video", *map(str, videos), "--out", str(out), "--model", str(clip_dir),
            "--num-frames", str(num_frames), "--dtype", dtype, "--device", str(device), "--workers", str(workers)]
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        try:
            code = llavidal(argv)
        except SystemExit as exc:  # argparse refused the arguments (an option renamed?)
            code = exc.code
    if code != 0:
        raise RuntimeError(f"llavidal {' '.join(argv[:2])} exited with {code}: {captured.getvalue().strip()[-2000:]}")


def ours_seconds(setup: ExtractionSetup, device: torch.device, workers: int, num_frames: int, repeats: int) -> float:
    """Median seconds of the whole in-process command over all of ``setup.videos`` (a fresh output folder
    each run, so nothing is skipped), after a warm-up run on the first video."""
    runs = iter(range(repeats + 1))

    def run():
        index = next(runs)
        videos = setup.videos[:1] if index == 0 else setup.videos
        run_extract_command(videos, setup.scratch / f"ours-{index}", setup.clip_dir, num_frames, COMPUTE_DTYPE,
                            device, workers)

    run()  # warm-up: CUDA kernels, page cache, worker start-up code paths
    return statistics.median(timed_seconds(run, device) for _ in range(repeats))


class TowerOnDevice:
    """The original's ``vision_tower`` moved to ``device`` in ``dtype``: its pixel batches (made on the CPU
    by the PIL processor) follow it there, as the original's ``.half().cuda()`` did."""

    def __init__(self, tower: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
        self.tower = tower.to(device=device, dtype=dtype)
        self.config = tower.config
        self.device, self.dtype = device, dtype

    def __call__(self, pixel_values: torch.Tensor, **kwargs: Any):
        return self.tower(pixel_values.to(self.device, self.dtype), **kwargs)


def run_original(videos: list[Path], clip_dir: Path, out: Path, num_frames: int, dtype: torch.dtype,
                 device: torch.device) -> None:
    """The original's serial method on ``videos``: load its processor and tower, then one video at a time
    (decord, PIL processor, 48 frames per forward, numpy pooling) and one float16 pickle per video."""
    from llavidal_video.testing.original_pipeline import load_original_models, original_extraction

    image_processor, tower = load_original_models(clip_dir)
    tower = TowerOnDevice(tower, device, dtype)
    out.mkdir(parents=True, exist_ok=True)
    for video in videos:
        pooled, _ = original_extraction(video, image_processor, tower, num_frames)
        with open(out / f"{video.name.split('.')[0]}.pkl", "wb") as handle:
            pickle.dump(pooled, handle)


def original_seconds(setup: ExtractionSetup, device: torch.device, dtype: str, num_frames: int, repeats: int) -> float:
    """Median seconds of `run_original` (model load included) over all of ``setup.videos``, after a warm-up
    run on the first video."""
    runs = iter(range(repeats + 1))

    def run():
        index = next(runs)
        videos = setup.videos[:1] if index == 0 else setup.videos
        run_original(videos, setup.clip_dir, setup.scratch / f"original-{dtype}-{index}", num_frames,
                     getattr(torch, dtype), device)

    run()
    return statistics.median(timed_seconds(run, device) for _ in range(repeats))


def extraction_row(key: str, measurement: str, precision: str, seconds: float, setup: ExtractionSetup) -> Row:
    """A row of videos/s and frames/s for ``seconds`` spent on all of ``setup.videos``."""
    return Row(key, measurement, precision, seconds,
               {"videos/s": len(setup.videos) / seconds, "frames/s": setup.total_frames / seconds})


def ratio_rows(rows: list[Row]) -> list[Row]:
    """Throughput ratios ours/floor and ours/original (each precision), from the extraction rows present."""
    by_key = {row.key: row for row in rows}
    ours = by_key.get("extract.ours")
    if ours is None:
        return []
    ratios = []
    others = [("extract.floor", "ours / floor")] + [(f"extract.original.{dtype}", "ours / original")
                                                   for dtype in ORIGINAL_DTYPES]
    for key, name in others:
        other = by_key.get(key)
        if other is not None:
            ratios.append(Row(f"{key.replace('extract.', 'extract.ratio.ours_')}",
                              f"{name}: videos/s ratio (>1: ours faster)", f"{ours.precision} / {other.precision}",
                              None, {"x": ours.values["videos/s"] / other.values["videos/s"]}))
    return ratios


# -- sections 2 and 3: the fused model -----------------------------------------------------------------------------

def build_fused_model(llm: dict[str, int], device: torch.device, dtype: torch.dtype, seed: int = 0):
    """``(model, processor)``: a `LlavidalForConditionalGeneration` with the seed's three cues (video 356x1024,
    object 8 rows x 512 per object, pose 256x216) around a random `LlamaForCausalLM` of ``llm`` sizes, built
    directly on ``device`` in ``dtype`` (never materialised on the CPU first), and its processor (the tiny test
    tokenizer plus the cue tokens; token ids agree with the model's)."""
    from transformers import AutoModelForCausalLM

    from llavidal_core.modeling import LlavidalForConditionalGeneration
    from llavidal_core.processing import LlavidalProcessor
    from llavidal_core.seed_cues import LLAVIDAL_CUES
    from llavidal_core.testing.tiny_models import build_tiny_tokenizer, tiny_llama_config

    processor = LlavidalProcessor(build_tiny_tokenizer(), LLAVIDAL_CUES)
    torch.manual_seed(seed)
    with torch.device(device):
        language_model = AutoModelForCausalLM.from_config(tiny_llama_config(**llm), dtype=dtype)
        model = LlavidalForConditionalGeneration.from_language_model(
            language_model, LLAVIDAL_CUES, processor.cue_token_ids)
    return model.to(device=device, dtype=dtype), processor


def sample_cue_features(cues, seed: int) -> dict[str, torch.Tensor]:
    """One sample's random features: ``{cue: (rows, feature_dim)}`` float32 on the CPU (as a loader gives them)."""
    generator = torch.Generator().manual_seed(seed)
    return {spec.name: torch.randn(spec.num_rows(NUM_OBJECTS if spec.tokens_per_item else None), spec.feature_dim,
                                   generator=generator) for spec in cues}


def user_prompt(processor) -> str:
    """The question followed by every cue's placeholder, as llavidal prompts are written."""
    return f"{QUESTION}\n" + "".join(spec.placeholder for spec in processor.cues)


def training_batch(processor, batch_size: int, text_tokens: int, seed: int = 0) -> dict[str, Any]:
    """A right-padded training batch from the processor: ``batch_size`` one-turn conversations whose text
    (template, question, answer) holds at least ``text_tokens`` tokens, each with all cues' features.

    Returns the processor's dict: ``input_ids``/``attention_mask``/``labels`` ``[B, T]`` (T = cue rows + start/end
    tokens + text), ``cue_features`` ``{cue: [B, rows, dim]}`` and ``cue_feature_masks``.
    """
    features = [sample_cue_features(processor.cues, seed + index) for index in range(batch_size)]
    rows = {cue: processor.cue_rows(cue, tensor) for cue, tensor in features[0].items()}
    cue_positions = sum(len(processor.cue_run_ids(cue, count)) for cue, count in rows.items())
    for repeats in range(1, 1000):
        conversation = [{"from": "human", "value": user_prompt(processor)},
                        {"from": "gpt", "value": " ".join([ANSWER_SENTENCE] * repeats)}]
        if len(processor.encode(conversation, rows).input_ids) - cue_positions >= text_tokens:
            break
    return processor([conversation] * batch_size, features)


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors (and its cue dicts' tensors) on ``device``."""
    return {key: ({cue: tensor.to(device) for cue, tensor in value.items()} if isinstance(value, dict)
                  else value.to(device)) for key, value in batch.items()}


def peak_memory_gib(device: torch.device) -> float:
    """CUDA: ``max_memory_allocated`` since the last reset; CPU: this process's peak resident set. In GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return peak_kib / 2**20


def train_step_stats(model, batch: dict[str, Any], device: torch.device, steps: int,
                     gradient_checkpointing: bool = False, learning_rate: float = 1e-4) -> dict[str, float]:
    """Time forward + backward + AdamW step of the projectors (LM frozen) on ``batch``.

    Returns ``seconds`` (median step, warm-up excluded), ``tokens_per_s`` (fused sequence length x batch /
    step seconds), ``seq_len``, ``peak_gib`` (weights + optimizer + activations) and the last ``loss``.

    Raises:
        RuntimeError: a projector got no gradient, or the loss is not finite.
    """
    model.set_trainable({"projectors"})
    model.train()
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate)
    inputs = move_batch(batch, device)
    losses = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(**inputs, use_cache=False).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        seconds = median_seconds(step, device, steps)
        if any(parameter.grad is None for parameter in parameters):
            raise RuntimeError("a cue projector got no gradient: the features did not reach the loss")
        loss = float(losses[-1])
        if not math.isfinite(loss):
            raise RuntimeError(f"the training loss is {loss}")
        peak = peak_memory_gib(device)
    finally:
        optimizer.zero_grad(set_to_none=True)
        del optimizer
        if gradient_checkpointing:
            model.gradient_checkpointing_disable()
        model.eval()
    batch_size, seq_len = inputs["input_ids"].shape
    return {"seconds": seconds, "tokens_per_s": batch_size * seq_len / seconds, "seq_len": seq_len,
            "peak_gib": peak, "loss": loss}


def generation_stats(model, processor, device: torch.device, batch_size: int, new_tokens: int,
                     repeats: int) -> dict[str, float]:
    """Time `LlavidalPipeline` on ``batch_size`` questions with all cues' features: one batched call vs one call
    per question, greedy, exactly ``new_tokens`` tokens each (``min_new_tokens``).

    Returns ``batched_s``/``sequential_s`` (median seconds for all ``batch_size`` answers, warm-up excluded),
    ``batched_tokens_per_s``/``sequential_tokens_per_s`` (generated tokens / s), ``speedup`` and
    ``prompt_tokens`` (one prompt's length).

    Raises:
        RuntimeError: a call generated another number of tokens than ``new_tokens``.
    """
    from llavidal_core.inference import LlavidalPipeline

    pipe = LlavidalPipeline(model.eval(), processor)
    model.generation_config.min_new_tokens = new_tokens  # random weights: no early end of answer
    generate = model.generate
    steps: list[int] = []

    def counting_generate(*args, **kwargs):  # what the pipeline calls: record how many tokens each call added
        output = generate(*args, **kwargs)
        steps.append(output.shape[1] - kwargs["input_ids"].shape[1])
        return output

    model.generate = counting_generate
    features = [sample_cue_features(processor.cues, 1000 + index) for index in range(batch_size)]
    prompt = processor([[{"from": "human", "value": user_prompt(processor)}]], features[:1], add_generation_prompt=True)

    def batched():
        pipe(features=features, question=[QUESTION] * batch_size, max_new_tokens=new_tokens)

    def sequential():
        for one in features:
            pipe(features=one, question=QUESTION, max_new_tokens=new_tokens)

    try:
        with torch.inference_mode():
            batched_s = median_seconds(batched, device, repeats)
            sequential_s = median_seconds(sequential, device, repeats)
    finally:
        del model.generate
    if set(steps) != {new_tokens}:
        raise RuntimeError(f"the pipeline generated {sorted(set(steps))} tokens per call, not {new_tokens}")
    tokens = batch_size * new_tokens
    return {"batched_s": batched_s, "sequential_s": sequential_s, "batched_tokens_per_s": tokens / batched_s,
            "sequential_tokens_per_s": tokens / sequential_s, "speedup": sequential_s / batched_s,
            "prompt_tokens": prompt["input_ids"].shape[1]}


def llm_label(sizes: Sizes, layers: int) -> str:
    """The LM's row label, saying so when fewer layers than the named size are used."""
    full = sizes.llm["num_hidden_layers"]
    if layers == full:
        return f"{sizes.llm_label} ({layers} layers)"
    return f"{sizes.llm_label} width, {layers} of {full} layers"


# -- the run --------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="test sizes (automatic without CUDA)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--videos", nargs="+", type=Path, default=None,
                        help="videos to extract (default: ../shared/data/videos, else synthetic clips); "
                             "linked repeatedly up to the size's video count")
    parser.add_argument("--num-videos", type=int, default=None, help="videos per extraction run (gpu 12, tiny 2)")
    parser.add_argument("--workers", type=int, default=None, help="decode workers of ours (gpu min(8, CPUs), tiny 1)")
    parser.add_argument("--llm-layers", type=int, default=None,
                        help="fewer LM layers than the size's (the row label says so), if 32 do not fit the time")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="in the training step")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--budget-s", type=float, default=400.0,
                        help="start no step whose estimate exceeds the seconds left (default: 400)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    budget = Budget(args.budget_s)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the weight-loading bars of every model load, on stderr
    started = time.perf_counter()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    base = TINY_SIZES if args.tiny or device.type != "cuda" else GPU_SIZES
    label_llm = llm_label(base, args.llm_layers or base.llm["num_hidden_layers"])
    sizes = dataclasses.replace(
        base, num_videos=args.num_videos or base.num_videos,
        workers=base.workers if args.workers is None else args.workers,
        llm={**base.llm, "num_hidden_layers": args.llm_layers or base.llm["num_hidden_layers"]})
    dtype = getattr(torch, COMPUTE_DTYPE)
    rows: list[Row] = []
    skipped: list[str] = []
    failed: dict[str, str] = {}
    step_seconds: dict[str, float] = {}  # wall time of each step, warm-ups and set-up included
    torch.manual_seed(0)

    def step(key: str, run: Callable[[], Any]) -> Any:
        """Run one step unless the budget cannot hold its estimate; record skips and failures."""
        need = sizes.estimates_s[key]
        if budget.left() < need:
            skipped.append(f"{key} (needs ~{need:.0f} s, {max(budget.left(), 0):.0f} s of --budget-s left)")
            return None
        start = time.perf_counter()
        try:
            return run()
        except Exception as exc:  # noqa: BLE001 - one broken step must not cost the others' device time
            failed[key] = f"{type(exc).__name__}: {exc}"
            return None
        finally:
            step_seconds[key] = time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="gpu_check-") as scratch_name:
        scratch = Path(scratch_name)
        if "extract" in args.sections:
            setup = step("extract.setup", lambda: prepare_extraction(sizes, device, scratch, args.videos))
            if setup is None:
                skipped += [f"extract.{name} (no setup)" for name in ("floor", "ours", *(
                    f"original.{d}" for d in ORIGINAL_DTYPES))]
            else:
                what = f"{len(setup.videos)} videos x {sizes.num_frames} frames, {sizes.clip_label}"
                seconds = step("extract.floor", lambda: floor_seconds(setup, device, sizes.extract_repeats))
                if seconds is not None:
                    rows.append(extraction_row("extract.floor", f"(b) floor: encode_frames on pre-decoded frames, "
                                               f"{what}", COMPUTE_DTYPE, seconds, setup))
                setup.encoder = None
                seconds = step("extract.ours", lambda: ours_seconds(setup, device, sizes.workers, sizes.num_frames,
                                                                    sizes.extract_repeats))
                if seconds is not None:
                    rows.append(extraction_row("extract.ours", f"(a) ours: llavidal extract video in-process, {what}, "
                                               f"workers {sizes.workers}, model load incl.", COMPUTE_DTYPE, seconds,
                                               setup))
                for original_dtype in ORIGINAL_DTYPES:
                    key = f"extract.original.{original_dtype}"
                    seconds = step(key, lambda d=original_dtype: original_seconds(setup, device, d, sizes.num_frames,
                                                                                   sizes.extract_repeats))
                    if seconds is not None:
                        rows.append(extraction_row(key, f"(c) original serial method, {what}, model load incl.",
                                                   original_dtype, seconds, setup))
                rows += ratio_rows(rows)
                if device.type == "cuda":
                    torch.cuda.empty_cache()

    if {"train", "generate"} & set(args.sections):
        built = step("build", lambda: build_fused_model(sizes.llm, device, dtype))
        if built is None:
            skipped += [f"{name} (no model)" for name in ("train", "generate") if name in args.sections]
        else:
            model, processor = built
            if "train" in args.sections:
                stats = step("train", lambda: train_step_stats(
                    model, training_batch(processor, sizes.train_batch, sizes.text_tokens), device, sizes.train_steps,
                    args.gradient_checkpointing))
                if stats is not None:
                    memory = "peak GiB allocated" if device.type == "cuda" else "peak GiB RSS"
                    ckpt = ", gradient checkpointing" if args.gradient_checkpointing else ""
                    rows.append(Row("train.step", f"fused train step, {label_llm} frozen, 3 cue projectors + AdamW, "
                                    f"batch {sizes.train_batch} x {stats['seq_len']} tokens{ckpt}", COMPUTE_DTYPE,
                                    stats["seconds"], {"tokens/s": stats["tokens_per_s"], memory: stats["peak_gib"]}))
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            if "generate" in args.sections:
                stats = step("generate", lambda: generation_stats(model, processor, device, sizes.gen_batch,
                                                                  sizes.new_tokens, sizes.gen_repeats))
                if stats is not None:
                    what = (f"{label_llm}, {sizes.gen_batch} prompts of {stats['prompt_tokens']} tokens, "
                            f"{sizes.new_tokens} new tokens each, greedy")
                    rows.append(Row("generate.batched", f"generate: one batch of {sizes.gen_batch}, {what}",
                                    COMPUTE_DTYPE, stats["batched_s"], {"tokens/s": stats["batched_tokens_per_s"]}))
                    rows.append(Row("generate.sequential", f"generate: {sizes.gen_batch} calls of batch 1, {what}",
                                    COMPUTE_DTYPE, stats["sequential_s"],
                                    {"tokens/s": stats["sequential_tokens_per_s"]}))
                    rows.append(Row("generate.ratio.batched_sequential", "generate: batched / one at a time, tokens/s",
                                    f"{COMPUTE_DTYPE} / {COMPUTE_DTYPE}", None, {"x": stats["speedup"]}))
            del model, built
            if device.type == "cuda":
                torch.cuda.empty_cache()

    total = time.perf_counter() - started
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"## llavidal GPU check: {where}, {sizes.name} sizes, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, {total:.0f} s in all (median of repeats, warm-up excluded)")
    print()
    print(markdown_table(rows))
    print()
    for item in skipped:
        print(f"skipped: {item}")
    for key, error in failed.items():
        print(f"FAILED: {key}: {error}")
    print(json.dumps({
        "device": where, "sizes": sizes.name, "torch": torch.__version__, "python": platform.python_version(),
        "total_s": total, "budget_s": args.budget_s, "rows": [dataclasses.asdict(row) for row in rows],
        "step_seconds": step_seconds, "skipped": skipped, "failed": failed,
    }))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
