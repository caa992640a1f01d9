"""``llavidal demo``: the whole toolkit on the miniature ADL world, on a laptop, with nothing downloaded.

1. build the world (`llavidal_core.world.build`);
2. compute its features with the three cue plugins' encoders, each writing its encoder record with the
   features: video with a tiny randomly initialised CLIP, objects with the same CLIP on crops along the
   world's annotated boxes (``annotations:``; they stand in for BLIP-2 and OWLv2, which cannot be downloaded
   here), pose with a PoseCLIP trained on the world's motions;
3. train a tiny LM with the cue sets video / video+pose / video+object / video+pose+object (each model
   saves the encoders its features came from, so ``llavidal ask / chat / serve`` work on raw inputs);
4. score each on the held-out performers' multiple-choice questions (log-likelihood, no judge), per
   question category, and print the table with what its columns mean, a conversation with the all-cue
   model about a held-out video (from its raw video and skeleton), and the commands to try next.

Everything is cached under the output folder in folders named by a digest of the settings that made them
(the world by its generator version and config, features by those plus the encoders' settings, runs by the
whole config), so a second run only evaluates and a changed knob recomputes only what depends on it.
Needs llavidal-video, llavidal-pose and llavidal-object, found through the plugin registry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llavidal_core.atomic_files import atomic_write_bytes
from llavidal_core.errors import MissingPluginError
from llavidal_core.video_ids import video_id_for
from llavidal_core.world.build import WorldConfig, build_world, world_is_built

CUE_ORDER = ("video", "pose", "object")
CUE_SETS = (("video",), ("video", "pose"), ("video", "object"), ("video", "pose", "object"))
CATEGORIES = ("pose-twin", "object-twin", "other")


@dataclass(frozen=True)
class DemoConfig:
    """The demo's knobs. The defaults run in under 5 minutes on a quiet 2-core CPU (see the README)."""

    world: WorldConfig = field(default_factory=lambda: WorldConfig(num_performers=16, held_out_performers=4,
                                                                   videos_per_performer=20))
    video_frames: int = 16
    video_pool_stride: int = 4
    clip_image_size: int = 56
    pose_steps: int = 200
    pose_tokens: int = 32
    llm_hidden: int = 96
    llm_layers: int = 2
    llm_vocab: int = 512
    projector: str = "linear"
    standardized_cues: tuple[str, ...] = ("pose", "object")
    epochs: float = 12.0
    batch_size: int = 8
    learning_rate: float = 3e-3
    seed: int = 0


def cache_key(*parts) -> str:
    """A short stable digest of what a cached folder was made from (a changed knob gets a new folder)."""
    from llavidal_core.world.build import GENERATOR_VERSION

    text = json.dumps([GENERATOR_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def _say(message: str) -> None:
    """Tell the user how the demo goes (the CLI shows it on stderr unless --quiet)."""
    logging.getLogger("llavidal.demo").info("[llavidal demo] %s", message)


def require_plugins() -> None:
    """The three cue plugins, as the registry sees them (the trained models rebuild their encoders through it)."""
    from llavidal_core.plugins import get_plugin_manager

    registered = get_plugin_manager().cues()
    missing = [f"llavidal-{cue}" for cue in CUE_ORDER if cue not in registered or registered[cue].encoder is None]
    if missing:
        raise MissingPluginError(f"the demo uses every cue plugin; install: pip install {' '.join(missing)}")


# -- models ---------------------------------------------------------------------------------------------------


def save_random_clip(directory: Path, image_size: int, seed: int) -> Path:
    """A randomly initialised CLIP (vision + text, test width) with its processor, at ``image_size``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from llavidal_core.testing.tiny_clip_text import build_tiny_clip_tokenizer

    if (directory / "config.json").exists():
        return directory
    tokenizer = build_tiny_clip_tokenizer()
    text = CLIPTextConfig(vocab_size=99, hidden_size=32, projection_dim=64, num_hidden_layers=2,
                          num_attention_heads=4, intermediate_size=37, max_position_embeddings=77,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)
    vision = CLIPVisionConfig(image_size=image_size, patch_size=14, hidden_size=64, projection_dim=64,
                              num_hidden_layers=3, num_attention_heads=4, intermediate_size=128)
    torch.manual_seed(seed)
    CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=64)) \
        .eval().save_pretrained(directory)
    processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                   crop_size={"height": image_size, "width": image_size})
    CLIPProcessor(processor, tokenizer).save_pretrained(directory)
    return directory


def save_world_text_tower(directory: Path, prompts: list[str], seed: int) -> Path:
    """A random CLIP text tower whose word-level vocabulary holds every word of PoseCLIP's action prompts."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from llavidal_core.testing.tiny_clip_text import build_tiny_clip_tokenizer

    if (directory / "config.json").exists():
        return directory
    tokenizer = build_tiny_clip_tokenizer(" ".join(prompts))
    config = CLIPTextConfig(vocab_size=99, hidden_size=32, intermediate_size=37, projection_dim=64,
                            num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    CLIPTextModelWithProjection(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def llm_folder_name(config: DemoConfig) -> str:
    """The base LM's cache folder: a changed LM knob (or seed) makes a new one instead of reusing the old."""
    return f"llm-{cache_key(config.llm_hidden, config.llm_layers, config.llm_vocab, config.seed)}"


def save_world_llm(directory: Path, world: Path, config: DemoConfig) -> Path:
    """A random tiny Llama and a BPE tokenizer trained on the world's instructions and the chat templates."""
    import torch
    from transformers import LlamaForCausalLM

    from llavidal_core.templates import LLAVIDAL_V1, VICUNA_V1_1
    from llavidal_core.testing.tiny_models import build_tiny_tokenizer, tiny_llama_config

    if (directory / "config.json").exists():
        return directory
    records = json.loads((world / "train.json").read_text())
    texts = [turn["value"] for record in records for turn in record["conversations"]]
    # the training prompt's system text and roles as often as they occur: a few tokens, not a hundred per sample
    chat = [VICUNA_V1_1.system, "USER: ASSISTANT:"] * len(records)
    corpus = " ".join([*chat, LLAVIDAL_V1.system, *texts])
    tokenizer = build_tiny_tokenizer(vocab_size=config.llm_vocab, corpus=corpus)
    torch.manual_seed(config.seed)
    hidden = config.llm_hidden
    model = LlamaForCausalLM(tiny_llama_config(vocab_size=len(tokenizer), hidden_size=hidden,
                                               intermediate_size=hidden * 2, num_hidden_layers=config.llm_layers,
                                               num_attention_heads=4, num_key_value_heads=2))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# -- features ---------------------------------------------------------------------------------------------------


def cue_encoder_class(cue: str):
    """The registered encoder class of ``cue`` (the demo reaches every cue through the plugin registry)."""
    from llavidal_core.plugins import get_plugin_manager

    return get_plugin_manager().cue(cue).encoder_factory()


def extract_cue(cue: str, inputs: Path, store_dir: Path, build_encoder, note: str) -> None:
    """Run the extraction engine over the world's files of ``cue`` (those not done yet) with the encoder
    ``build_encoder()`` builds, noting ``note`` in each file's metadata; any failure is an error (the world is
    generated, so a failure is a bug)."""
    from llavidal_core.errors import LlavidalError
    from llavidal_core.extraction import ERRORS_FILE, collect_inputs, index_by_video_id
    from llavidal_core.extraction_engine import FeatureWriter, extract_features, suffix_filter

    encoder_class = cue_encoder_class(cue)
    writer = FeatureWriter(store_dir, cue)
    found = index_by_video_id(collect_inputs([inputs], suffix_filter(encoder_class.input_suffixes)))
    todo = [(video_id, path) for video_id, path in sorted(found.items()) if not writer.is_done(video_id)]
    if not todo:
        return
    encoder = build_encoder(encoder_class).eval()
    encoder.metadata_notes = {**(encoder.metadata_notes or {}), "note": note}
    report = extract_features(encoder, todo, writer, description=f"{cue} features ({note})")
    if report.failed:
        raise LlavidalError(f"{report.failed} of the world's {cue} inputs failed; see {store_dir / ERRORS_FILE}")


def extract_video_features(world: Path, store_dir: Path, clip: Path, config: DemoConfig) -> None:
    extract_cue("video", world / "videos", store_dir, lambda encoder_class: encoder_class.from_pretrained(
        str(clip), num_frames=config.video_frames, sampling="uniform", pool="spatial",
        pool_stride=config.video_pool_stride), "random tiny CLIP of the demo")


def object_encoder(world: Path, clip: Path, config: DemoConfig, encoder_class=None):
    """The object cue's encoder with the world's annotated boxes (``annotations:``) standing in for BLIP-2 +
    OWLv2, which cannot be downloaded here, and the random tiny CLIP embedding the crops."""
    encoder_class = encoder_class or cue_encoder_class("object")
    return encoder_class(tagger=None, detector=f"annotations:{(world / 'objects').resolve()}", encoder=str(clip),
                         num_frames=config.world.frames_per_action * config.world.actions_per_video,
                         min_track_length=2, max_objects=3).eval()


def extract_object_features(world: Path, store_dir: Path, clip: Path, config: DemoConfig) -> None:
    extract_cue("object", world / "videos", store_dir,
                lambda encoder_class: object_encoder(world, clip, config, encoder_class),
                "annotated boxes of the miniature world (stand in for BLIP-2 + OWLv2), random tiny CLIP")


def extract_pose_features(world: Path, store_dir: Path, models: Path, config: DemoConfig) -> None:
    from llavidal_core.features import FeatureStore
    from llavidal_core.world.actions import WORLD_ACTIONS
    from llavidal_pose.text import action_prompts
    from llavidal_pose.training import TrainConfig, train_poseclip

    store = FeatureStore(store_dir)
    if all(store.has(video_id_for(p, world / "videos"), "pose") for p in (world / "videos").glob("*.mp4")):
        return
    motions = sorted({action.motion for action in WORLD_ACTIONS})
    poseclip = models / "poseclip"
    if not (poseclip / "config.json").exists():
        text = save_world_text_tower(models / "pose-text", action_prompts(motions), config.seed)
        _say(f"training PoseCLIP on the world's {len(motions)} motions ({config.pose_steps} steps)")
        result = train_poseclip(TrainConfig.from_dict({
            "output_dir": str(poseclip), "seed": config.seed,
            "encoder": {"width": 32, "num_heads": 4, "depth": 4, "downsample_layers": [1, 3], "num_frames": 32,
                        "num_person": 1, "num_tokens": config.pose_tokens, "embed_dim": 64},
            "text": {"model": str(text)},
            "data": {"source": "synthetic", "actions": motions, "train_per_action": 48, "eval_per_action": 12},
            "training": {"steps": config.pose_steps, "batch_size": 32, "learning_rate": 2e-3, "device": "cpu"},
        }), log=lambda message: None)
        _say(f"PoseCLIP zero-shot accuracy on held-out motions: {result.eval_accuracy:.3f}")
    extract_cue("pose", world / "skeletons", store_dir,
                lambda encoder_class: encoder_class.from_pretrained(str(poseclip)), "PoseCLIP trained on the world")


# -- training and evaluation --------------------------------------------------------------------------------------


def cue_set_name(cues: tuple[str, ...]) -> str:
    return "+".join(cue for cue in CUE_ORDER if cue in cues)


def train_cue_set(cues: tuple[str, ...], world: Path, features: Path, llm: Path, runs: Path, specs: dict,
                  config: DemoConfig) -> Path:
    from llavidal_core.training.recipe import recipe_from_dict
    from llavidal_core.training.runner import run_recipe

    output = runs / cue_set_name(cues)
    if (output / "config.json").exists():
        return output
    _say(f"training the cue set {cue_set_name(cues)}")
    recipe = recipe_from_dict({
        "output_dir": str(output),
        "model": {"base": str(llm), "dtype": "float32"},
        "cues": [{"name": cue, "features": str(features), "projector": config.projector,
                  "standardize": cue in config.standardized_cues, "spec": specs[cue]} for cue in CUE_ORDER if cue in cues],
        "data": {"train": str(world / "train.json"), "missing_cue": "drop", "model_max_length": 1024,
                 "cache_features": True},
        "train": {"trainable": ["llm", "projectors", "embeddings"], "epochs": config.epochs,
                  "batch_size": config.batch_size,
                  "learning_rate": config.learning_rate, "weight_decay": 0.0, "warmup_ratio": 0.05,
                  "lr_scheduler": "cosine", "precision": "fp32", "save_steps": 100000, "logging_steps": 50,
                  "seed": config.seed, "save": "full"},
    })
    run_recipe(recipe)
    return output


def evaluate_cue_set(model_dir: Path, world: Path, features: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    import llavidal_core.modeling  # noqa: F401 - registers the llavidal model type
    from llavidal_core.evaluation.accuracy import bootstrap_accuracy
    from llavidal_core.evaluation.mcq_eval import evaluate_mcq, features_from_store
    from llavidal_core.evaluation.mcq_files import load_mcq_file
    from llavidal_core.features import FeatureStore
    from llavidal_core.processing import LlavidalProcessor

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    processor = LlavidalProcessor.from_pretrained(model_dir)
    questions = load_mcq_file(world / "mcq_test.json")
    categories = {str(i): r["category"] for i, r in enumerate(json.loads((world / "mcq_test.json").read_text()))}
    cue_names = [spec.name for spec in processor.cues]
    evaluation = evaluate_mcq(model, processor, [questions],
                              features_from_store(FeatureStore(features, create=False), cue_names))
    correct = [p.correct for p in evaluation.predictions]
    result = bootstrap_accuracy(correct).to_dict()
    result["by_category"] = {}
    for category in CATEGORIES:
        subset = [p.correct for p in evaluation.predictions if categories[p.question_id] == category]
        if subset:
            result["by_category"][category] = bootstrap_accuracy(subset).to_dict()
    return result


TABLE_NOTES = (
    "Each row is a model trained on the cues named, scored on multiple-choice questions about the {held_out} "
    "held-out performers' videos (no video of theirs is trained on): which action comes first / last, four "
    "choices each, so chance is 0.25. The choice is the option the model finds most likely (log-likelihood, "
    "no judge).",
    "accuracy: share of all questions answered right, with its 95% bootstrap interval.",
    "pose-twin: questions whose answer has a twin action that only the motion tells apart (wave / clap, "
    "sit down / stand up), always among the choices.",
    "object-twin: questions whose answer has a twin that only the held object tells apart (drink from a cup / "
    "answer a phone, read a book / use a tablet).",
    "other: the remaining actions (kick a ball, walk), which have no twin.",
    "n: number of questions.",
)


def results_table(results: dict) -> str:
    header = "| cues | accuracy (95% CI) | pose-twin | object-twin | other | n |"
    lines = [header, "| --- | --- | --- | --- | --- | --- |"]
    for name, result in results.items():
        by = result["by_category"]
        cells = [f"{by[c]['accuracy']:.2f}" if c in by else "–" for c in CATEGORIES]
        low, high = result["ci95"]
        lines.append(f"| {name} | {result['accuracy']:.2f} ({low:.2f}–{high:.2f}) | {' | '.join(cells)} | "
                     f"{result['n']} |")
    return "\n".join(lines)


def held_out_example(world: Path) -> dict:
    """The first held-out video of the world: its id and true actions (from ``world.json``)."""
    manifest = json.loads((world / "world.json").read_text())
    return next(v for v in manifest["videos"] if v["held_out"])


def held_out_inputs(world: Path, video_id: str) -> dict[str, Path]:
    """The raw inputs of a world video for each cue: its video file (video and object cues) and skeleton."""
    return {"video": world / "videos" / f"{video_id}.mp4", "pose": world / "skeletons" / f"{video_id}.skeleton"}


def sample_conversation(model_dir: Path, world: Path) -> list[dict]:
    """A held-out video asked about by ``model_dir`` from its raw video and skeleton, through the encoders the
    model records (as ``llavidal ask`` answers): what happens, then its own multiple-choice question."""
    from llavidal_core.evaluation.mcq_files import MCQuestion
    from llavidal_core.evaluation.mcq_scoring import mcq_prompt
    from llavidal_core.inference import LlavidalPipeline

    video = held_out_example(world)
    inputs = held_out_inputs(world, video["video_id"])
    record = next(r for r in json.loads((world / "mcq_test.json").read_text())
                  if r["video_filename"] == f"{video['video_id']}.mp4")
    choice = mcq_prompt(MCQuestion("", "", record["question"], record["answer_choices"],
                                   record["ground_truth_letter"], ""), [])
    pipe = LlavidalPipeline.from_pretrained(model_dir, device="cpu")
    chat = pipe.chat(video=str(inputs["video"]), inputs={"pose": str(inputs["pose"])})
    turns = []
    for question in ("What does the person do in the video?", choice.strip()):
        turns.append({"question": question, "answer": chat.ask(question, max_new_tokens=40)})
    return [{"video_id": video["video_id"], "truth": video["actions"], "turns": turns}]


def next_commands(model_dir: Path, world: Path, video_id: str) -> list[str]:
    """The commands a user can run next on the model just trained, about a held-out video, as they type them."""
    import shlex

    inputs = held_out_inputs(world, video_id)
    model, video, pose = (shlex.quote(str(p)) for p in (model_dir, inputs["video"], inputs["pose"]))
    return [f"llavidal ask {model} {video} 'What does the person do in the video?' --input pose={pose}",
            f"llavidal chat {model} {video} --input pose={pose}",
            f"llavidal serve {model} --examples {shlex.quote(str(world / 'examples'))}"]


def link_examples(world: Path, count: int = 4) -> Path:
    """``world/examples/``: a few held-out videos for ``llavidal serve --examples`` (hard links, else copies)."""
    import os
    import shutil

    examples = world / "examples"
    examples.mkdir(exist_ok=True)
    manifest = json.loads((world / "world.json").read_text())
    for video in [v for v in manifest["videos"] if v["held_out"]][:count]:
        source, target = world / "videos" / f"{video['video_id']}.mp4", examples / f"{video['video_id']}.mp4"
        if not target.exists():
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
    return examples


def report(results: dict, conversation: list[dict], model_dir: Path, world: Path, config: DemoConfig) -> str:
    """What the demo prints at the end: the table and what its columns mean, a conversation, what to try next."""
    held_out = config.world.held_out_performers
    sample = conversation[0]
    lines = ["", results_table(results), "", *(f"  {note}".format(held_out=held_out) for note in TABLE_NOTES), "",
             f"A held-out video, {sample['video_id']} (truly: {', then '.join(sample['truth'])}), asked by the "
             f"model trained on every cue ({model_dir.name}), from the raw video and skeleton:"]
    for turn in sample["turns"]:
        question = turn["question"].replace("\n", " ")
        lines += [f"  USER: {question}", f"  ASSISTANT: {turn['answer']}"]
    lines += ["", "Try the model just trained (answers come from the video file and skeleton, through the "
                  "encoders saved with the model):"]
    lines += [f"  {command}" for command in next_commands(model_dir, world, sample["video_id"])]
    return "\n".join(lines)


def run_demo(out: str | Path, config: DemoConfig = DemoConfig()) -> dict:
    """Run (or resume) the whole demo under ``out``; returns what ``results.json`` holds."""
    require_plugins()
    from llavidal_core.features import FeatureStore

    started = time.perf_counter()
    if not sys.stderr.isatty():  # a log file gets no progress bars of saving and loading the tiny models
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    out = Path(out)
    world_key = cache_key(asdict(config.world))
    feature_key = cache_key(asdict(config.world), config.video_frames, config.video_pool_stride,
                            config.clip_image_size, config.pose_steps, config.pose_tokens, config.seed)
    models, features = out / f"models-{feature_key}", out / f"features-{feature_key}"
    runs = out / f"runs-{cache_key(asdict(config))}"
    world = out / f"world-{world_key}"
    built = world_is_built(world, config.world)
    _say(f"{'using the miniature world already built in' if built else 'building the miniature world in'} {world}")
    build_world(world, config.world)
    clip = save_random_clip(models / "clip", config.clip_image_size, config.seed)
    store = FeatureStore(features)
    extract_video_features(world, features, clip, config)
    extract_object_features(world, features, clip, config)
    extract_pose_features(world, features, models, config)
    llm = save_world_llm(models / llm_folder_name(config), world, config)
    sample_id = sorted(store.video_ids())[0]
    specs = {cue: {"feature_dim": int(store.read(sample_id, cue).shape[-1])} for cue in CUE_ORDER}
    specs["video"]["num_tokens"] = int(store.read(sample_id, "video").shape[0])
    specs["pose"]["num_tokens"] = int(store.read(sample_id, "pose").shape[0])
    results = {}
    for cues in CUE_SETS:
        model_dir = train_cue_set(cues, world, features, llm, runs, specs, config)
        results[cue_set_name(cues)] = evaluate_cue_set(model_dir, world, features)
    table = results_table(results)
    final_model = runs / cue_set_name(CUE_SETS[-1])
    conversation = sample_conversation(final_model, world)
    link_examples(world)
    print(report(results, conversation, final_model, world, config))
    summary = {"cue_sets": results, "markdown": table, "sample_conversation": conversation,
               "config": asdict(config)}  # no timings: the same seed gives the same file
    atomic_write_bytes(out / "results.json", json.dumps(summary, indent=2).encode("utf-8"))
    _say(f"done in {time.perf_counter() - started:.1f} s; results in {out / 'results.json'}")
    return summary
