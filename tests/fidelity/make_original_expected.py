"""Make the expected values of tests/fidelity by running the ORIGINAL LLAVIDAL code (not run by the test suite).

What it writes under ``--out`` (tests/fidelity/data by default):

- ``llava_lightening_tiny/``: a base folder laid out like ``mmaaz60/LLaVA-7B-Lightening-v1-1``: a LLaVA config
  (``model_type: llava``, ``LlavaLlamaForCausalLM``, ``mm_*`` keys), a 3-token LLaVA extension of the vocabulary
  (``<im_patch>``, ``<im_start>``, ``<im_end>``), ``tokenizer.model`` only (a tiny SentencePiece BPE model trained
  here with LLaMA's trainer settings), fp16 ``.bin`` shards with an index, and LLaVA's ``model.mm_projector.*``.
- ``llavidal_weights.bin``: a projection checkpoint made by the original's own training code path
  (``initialize_vision_modules`` + ``initialize_vision_tokenizer`` with start/end tokens, saved with the
  ``LlavidalTrainer._save`` key filter), its projectors and embedding rows set to seeded random values.
- ``expected_tokenization.json``: ``input_ids`` and ``labels`` from the original's ``preprocess_multimodal`` +
  ``preprocess`` (slow tokenizer, ``use_fast=False``, vicuna_v1_1) for a handful of conversations, and the
  prompt ids of the original's inference (``llavidal_infer``, ``AutoTokenizer`` as ``initialize_model`` loads it).
- ``expected_logits.safetensors``: the original inference model (``initialize_model``) in float32, its logits
  over the base vocabulary at the text positions of one prompt with `deterministic_video_features`.
- ``expected_adlmcq.json.gz``: for each legacy ADLMCQ file, per question in file order, the video path (relative
  to ``--video_dir``) and the question text the original's ``multiproc_eval_*.py`` hands to the model.

Run it in the original's pinned environment, never the project's:

    pip install --target /work/orig-env/site 'transformers==4.41.1' sentencepiece 'tokenizers>=0.19,<0.20' \
        'huggingface_hub<0.24' safetensors protobuf
    PYTHONPATH=/work/orig-env/site:/work/orig-env/LLAVIDAL .venv/bin/python tests/fidelity/make_original_expected.py \
        --original /work/orig-env/LLAVIDAL --adlmcq ../shared/data/adlmcq --out tests/fidelity/data

(``/work/orig-env/LLAVIDAL`` is a checkout of ADL-X/LLAVIDAL at 7368801; torch comes from the project's venv.)
"""

from __future__ import annotations

import argparse
import copy
import gzip
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import torch

HIDDEN, LAYERS, HEADS, INTERMEDIATE = 32, 2, 4, 64
MM_HIDDEN = 1024
LLAVA_TOKENS = ["<im_patch>", "<im_start>", "<im_end>"]
VIDEO_DIR = "/VIDEOS"

CONVERSATIONS = {
    "adlx_all_cues_two_turns": {
        "cues": {"video": 356, "object": 16, "pose": 256},
        "conversations": [
            {"from": "human", "value": "<video><object><human_pose>\nWhat is the person doing in the video?"},
            {"from": "gpt", "value": "The person picks up a cup from the table and drinks from it."},
            {"from": "human", "value": "What does the person do after drinking?"},
            {"from": "gpt", "value": "After drinking, the person puts the cup back and sits down on a chair."},
        ],
    },
    "videoinstruct_placeholder_after": {
        "cues": {"video": 356},
        "conversations": [
            {"from": "human", "value": "Describe the activity in the video.\n<video>"},
            {"from": "gpt", "value": "A man is washing dishes in a kitchen sink."},
        ],
    },
    "videoinstruct_placeholder_before": {
        "cues": {"video": 356},
        "conversations": [
            {"from": "human", "value": "<video>\nWhat objects does the person use?"},
            {"from": "gpt", "value": "The person uses a kettle, a cup and a tea bag."},
        ],
    },
    "three_turns": {
        "cues": {"video": 356, "pose": 256},
        "conversations": [
            {"from": "human", "value": "<video><human_pose>\nIs the person standing or sitting?"},
            {"from": "gpt", "value": "The person is standing."},
            {"from": "human", "value": "Does the person wave?"},
            {"from": "gpt", "value": "Yes, the person waves with the right hand."},
            {"from": "human", "value": "How many times?"},
            {"from": "gpt", "value": "Three times."},
        ],
    },
    "answer_begins_with_space": {
        "cues": {"video": 356, "object": 8},
        "conversations": [
            {"from": "human", "value": "<video><object>\nWhat is on the table?"},
            {"from": "gpt", "value": " The table holds a book and a phone."},
        ],
    },
    "digits_newlines_and_unicode": {
        "cues": {"video": 356},
        "conversations": [
            {"from": "human", "value": "List the steps.\n<video>"},
            {"from": "gpt", "value": "Step 1: open the fridge.\nStep 2: take 2 eggs.\nStep 3: make a café crème."},
        ],
    },
}

INFERENCE_QUESTIONS = [
    "What is the person doing?",
    "What action does the person do after the action 'Walk'? The output should be the choice among one of the "
    "following choices. Choices are (A) Drink.From_cup (B) Leave (C) Eat.Snack (D) Sit_down",
]

TRAINER_SPEC = dict(  # LLaMA's tokenizer.model trainer_spec / normalizer_spec, at a tiny vocabulary
    model_type="bpe", vocab_size=700, character_coverage=1.0, byte_fallback=True, split_digits=True,
    allow_whitespace_only_pieces=True, remove_extra_whitespaces=False, normalization_rule_name="identity",
    add_dummy_prefix=True, split_by_unicode_script=True, split_by_number=True, split_by_whitespace=True,
    max_sentence_length=4192, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1,
)


def training_corpus(adlmcq_files: list[Path]) -> list[str]:
    from llavidal.video_conversation import conv_templates

    lines = [conv_templates["vicuna_v1_1"].system, conv_templates["llavidal_v1"].system,
             "USER: ASSISTANT: USER ASSISTANT", "The output should be the choice among one of the following choices."]
    for sample in CONVERSATIONS.values():
        lines += [turn["value"] for turn in sample["conversations"]]
    for path in adlmcq_files:
        data = json.loads(path.read_text())
        records = data.values() if isinstance(data, dict) else data
        for index, record in enumerate(records):
            if index % 7 == 0:
                lines += [str(value) for value in record.values() if isinstance(value, (str, dict))]
    return lines


def write_base_folder(folder: Path, corpus: list[str]) -> int:
    """The tiny LLaVA-Lightening-like base; returns its vocabulary size (SentencePiece + 3 LLaVA tokens)."""
    import sentencepiece
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    corpus_file = folder.parent / "corpus.txt"
    corpus_file.write_text("\n".join(corpus) + "\n")
    sentencepiece.SentencePieceTrainer.train(input=str(corpus_file), model_prefix=str(folder / "tokenizer"),
                                             **TRAINER_SPEC)
    corpus_file.unlink()
    (folder / "tokenizer.vocab").unlink()
    sp_size = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).get_piece_size()
    vocab_size = sp_size + len(LLAVA_TOKENS)
    special = {"__type": "AddedToken", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "bos_token": {**special, "content": "<s>"},
        "clean_up_tokenization_spaces": False, "eos_token": {**special, "content": "</s>"},
        "model_max_length": 2048, "pad_token": None, "padding_side": "right", "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer", "unk_token": {**special, "content": "<unk>"}}, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>", "unk_token": "<unk>"}, indent=2))
    (folder / "added_tokens.json").write_text(json.dumps(
        {token: sp_size + index for index, token in enumerate(LLAVA_TOKENS)}, indent=2))

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
                         num_hidden_layers=LAYERS, num_attention_heads=HEADS, max_position_embeddings=2048,
                         rms_norm_eps=1e-6, torch_dtype="float16")
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    state = {name: tensor.detach().to(torch.float16).contiguous() for name, tensor in model.state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    state["model.mm_projector.weight"] = (torch.randn(HIDDEN, MM_HIDDEN, generator=generator) * 0.02).half()
    state["model.mm_projector.bias"] = torch.zeros(HIDDEN, dtype=torch.float16)
    names = sorted(state)
    shards = {"pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
              "pytorch_model-00002-of-00002.bin": names[len(names) // 2:]}
    weight_map = {}
    for shard, keys in shards.items():
        torch.save({key: state[key] for key in keys}, folder / shard)
        weight_map.update({key: shard for key in keys})
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    llava_config = config.to_dict()
    llava_config.update({
        "_name_or_path": "LLaVA-7B-Lightening-v1-1 (tiny)", "architectures": ["LlavaLlamaForCausalLM"],
        "model_type": "llava", "mm_hidden_size": MM_HIDDEN, "mm_use_im_start_end": True,
        "mm_vision_select_layer": -2, "mm_vision_tower": "openai/clip-vit-large-patch14",
        "sep_image_conv_front": False, "tune_mm_mlp_adapter": False, "use_mm_proj": True,
        "torch_dtype": "float16", "transformers_version": "4.28.0.dev0"})
    (folder / "config.json").write_text(json.dumps(llava_config, indent=2, sort_keys=True))
    return vocab_size


def make_projection(base: Path, out: Path) -> None:
    """The original's training set-up from ``base``, projectors and embeddings randomised, saved as it saves."""
    import transformers
    from llavidal.model import LLAVIDALLlamaForCausalLM

    modalities = {"video": True, "object": True, "pose": True}
    model = LLAVIDALLlamaForCausalLM.from_pretrained(str(base), model_args=modalities, torch_dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(base), model_max_length=2048, padding_side="right",
                                                           use_fast=False)
    model.get_model().initialize_vision_modules(modalities_to_use=modalities)
    model.initialize_vision_tokenizer(mm_use_vid_start_end=True, tokenizer=tokenizer, device="cpu",
                                      tune_mm_mlp_adapter=True)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "mm_projector" in name or "embed_tokens" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    keep = ["mm_projector", "embed_tokens", "embed_in"]  # llavidal/train/llava_trainer.py LlavidalTrainer._save
    torch.save({k: v for k, v in model.state_dict().items() if any(m in k for m in keep)}, out)


def training_tokenization(base: Path) -> dict:
    import transformers
    from llavidal import video_conversation as conversation_lib
    from llavidal.model import LLAVIDALLlamaForCausalLM
    from llavidal.train import train_llavidal

    modalities = {"video": True, "object": True, "pose": True}
    model = LLAVIDALLlamaForCausalLM.from_pretrained(str(base), model_args=modalities)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(base), model_max_length=2048, padding_side="right",
                                                           use_fast=False)
    conversation_lib.default_conversation = conversation_lib.conv_templates["vicuna_v1_1"]
    model.get_model().initialize_vision_modules(modalities_to_use=modalities)
    model.initialize_vision_tokenizer(mm_use_vid_start_end=True, tokenizer=tokenizer, device="cpu",
                                      tune_mm_mlp_adapter=True)
    cfg = {"is_multimodal": True, "sep_video_conv_front": False, "use_vid_start_end": True,
           "use_modality_string_prefix": False}
    results = {}
    for name, sample in CONVERSATIONS.items():
        cues = sample["cues"]
        sources = train_llavidal.preprocess_multimodal(
            copy.deepcopy([sample["conversations"]]), cfg, cues.get("video", 0), cues.get("pose", 0),
            cues.get("object", 0))
        encoded = train_llavidal.preprocess(sources, tokenizer)
        results[name] = {"cues": cues, "conversations": sample["conversations"],
                         "input_ids": encoded["input_ids"][0].tolist(), "labels": encoded["labels"][0].tolist()}
    return {"tokenizer_class": type(tokenizer).__name__, "cue_token_ids": {
        token: tokenizer.convert_tokens_to_ids(token) for token in (
            "<vid_patch>", "<object_patch>", "<pose_patch>", "<vid_start>", "<vid_end>", "<object_start>",
            "<object_end>", "<pose_start>", "<pose_end>")}, "conversations": results}


class _Captured(Exception):
    pass


class _CapturingModel:
    """Stands in for the LM inside ``llavidal_infer``: only its vision config is read before tokenizing."""

    def __init__(self):
        self.vision_config = types.SimpleNamespace(use_string_modality_prefix=False, use_vid_start_end=True)

    def get_model(self):
        return self


def inference_tokenizer(base: Path):
    """The tokenizer exactly as llavidal/eval/model_utils.py ``initialize_model`` sets it up (LLAVIDAL weights)."""
    from transformers import AutoTokenizer

    from llavidal.constants import (DEFAULT_OBJECT_END_TOKEN, DEFAULT_OBJECT_PATCH_TOKEN, DEFAULT_OBJECT_START_TOKEN,
                                    DEFAULT_POSE_END_TOKEN, DEFAULT_POSE_PATCH_TOKEN, DEFAULT_POSE_START_TOKEN,
                                    DEFAULT_VID_END_TOKEN, DEFAULT_VID_START_TOKEN, DEFAULT_VIDEO_PATCH_TOKEN)

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    tokenizer.add_tokens([DEFAULT_VIDEO_PATCH_TOKEN, DEFAULT_OBJECT_PATCH_TOKEN, DEFAULT_POSE_PATCH_TOKEN],
                         special_tokens=True)
    tokenizer.add_tokens([DEFAULT_VID_START_TOKEN, DEFAULT_VID_END_TOKEN, DEFAULT_OBJECT_START_TOKEN,
                          DEFAULT_OBJECT_END_TOKEN, DEFAULT_POSE_START_TOKEN, DEFAULT_POSE_END_TOKEN],
                         special_tokens=True)
    return tokenizer


def inference_ids(base: Path) -> dict:
    tokenizer = inference_tokenizer(base)
    results = []
    for question in INFERENCE_QUESTIONS:
        results.append({"question": question, "input_ids": _prompt_ids_without_vision(tokenizer, question)})
    return {"tokenizer_class": type(tokenizer).__name__, "prompts": results}


def _prompt_ids_without_vision(tokenizer, question: str) -> list[int]:
    """``llavidal_infer`` up to ``tokenizer([prompt])``, run with its vision steps stubbed out."""
    import llavidal.inference as inference

    captured = {}
    original_call = type(tokenizer).__call__

    def capture(self, text, *args, **kwargs):
        result = original_call(self, text, *args, **kwargs)
        captured["ids"] = list(result["input_ids"][0])
        raise _Captured

    type(tokenizer).__call__ = capture
    try:
        inference.llavidal_infer(None, question, "llavidal_v1", _CapturingModel(), None, tokenizer, None, 356)
    except _Captured:
        pass
    finally:
        type(tokenizer).__call__ = original_call
    return captured["ids"]


def expected_logits(base: Path, projection: Path, out: Path) -> None:
    import transformers
    from safetensors.torch import save_file

    import llavidal.eval.model_utils as model_utils

    real_from_pretrained = transformers.AutoTokenizer.from_pretrained
    model_utils.AutoTokenizer = types.SimpleNamespace(
        from_pretrained=lambda name, *a, **k: real_from_pretrained(
            str(base) if name == "mmaaz60/LLaVA-7B-Lightening-v1-1" else name, *a, **k))
    model_utils.CLIPImageProcessor = types.SimpleNamespace(from_pretrained=lambda *a, **k: None)
    # no CLIP and no GPU here: the vision tower is not needed for the LM's logits, and .cuda() stays on the CPU
    model_utils.CLIPVisionModel = types.SimpleNamespace(from_pretrained=lambda *a, **k: torch.nn.Identity())
    cuda, torch.nn.Module.cuda = torch.nn.Module.cuda, lambda self, *a, **k: self
    try:
        model, _, tokenizer, _, video_token_len = model_utils.initialize_model(str(base), str(projection))
    finally:
        torch.nn.Module.cuda = cuda
    model = model.float().eval()
    question = INFERENCE_QUESTIONS[0]
    input_ids = torch.tensor([_prompt_ids_without_vision(tokenizer, question)])
    features = deterministic_video_features()
    with torch.no_grad():
        logits = model(input_ids, video_spatio_temporal_features=features[None].float()).logits[0]
    base_vocab = json.loads((base / "config.json").read_text())["vocab_size"]
    text_positions = (input_ids[0] < base_vocab).nonzero()[:, 0]  # the video run's logits are left out (size)
    save_file({"input_ids": input_ids[0], "text_positions": text_positions,
               "logits": logits[text_positions, :base_vocab].contiguous()}, out,
              metadata={"question": question, "base_vocab_size": str(base_vocab),
                        "video_token_len": str(video_token_len)})


def deterministic_video_features() -> torch.Tensor:
    """(356, 1024) float16 values with no random generator involved."""
    return (torch.sin(torch.arange(356 * 1024, dtype=torch.float32) * 0.37) * 0.5).reshape(356, 1024).half()


MCQ_SCRIPTS = {
    "LEGACY-Charades-AR.json": "multiproc_eval_Charades-AR.py",
    "LEGACY-LEMMA-TC.json": "multiproc_eval_LEMMA-TC.py",
    "LEGACY-Smarthome-AR.json": "multiproc_eval_SH-AR.py",
    "LEGACY-TSU-TC.json": "multiproc_eval_TSU-TC.py",
}


def mcq_expectations(original: Path, files: dict[str, Path]) -> dict:
    """Run each legacy ``multiproc_eval_*.py``'s ``run_inference`` with the model replaced by a recorder."""
    sys.modules.setdefault("mcq_parsing_llm", types.SimpleNamespace(
        build_prompt=lambda *a: "", parse_with_llama=lambda prompt: ("Z", "")))
    torch.cuda.device_count = lambda: 1
    torch.cuda.set_device = lambda device: None
    results = {}
    for name, script in MCQ_SCRIPTS.items():
        spec = importlib.util.spec_from_file_location(script[:-3].replace("-", "_"),
                                                      original / "evaluation/ADL-X/legacy" / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        seen: list[list[str]] = []
        pending: dict[str, str] = {}

        def load_video(path):
            pending["video"] = os.path.relpath(path, VIDEO_DIR)
            return ["frames"]

        def model_infer(frames, question, *args, **kwargs):
            seen.append([pending.pop("video"), question])
            raise _Captured("recorded")

        module.initialize_model = lambda *a, **k: (None, None, None, None, 356)
        module.load_video = load_video
        module.model_infer = model_infer
        real_exists = os.path.exists
        os.path.exists = lambda path: str(path).startswith(VIDEO_DIR) or real_exists(path)
        try:
            args = argparse.Namespace(
                num_processes=1, video_dir=VIDEO_DIR, qa_file=str(files[name]), output_dir="/tmp/original-mcq",
                output_name="out", model_name="unused", conv_mode="llavidal_v1", projection_path="unused",
                use_token_modality_prefix=True, use_string_modality_prefix=False,
                model_trained_with_base_videochatgpt=False, max_new_tokens=1024, debug=False)
            with open(os.devnull, "w") as quiet:
                stdout, sys.stdout = sys.stdout, quiet
                try:
                    module.run_inference(0, args)
                finally:
                    sys.stdout = stdout
        finally:
            os.path.exists = real_exists
        results[name] = seen
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", type=Path, required=True, help="checkout of ADL-X/LLAVIDAL")
    parser.add_argument("--adlmcq", type=Path, required=True, help="folder with LEGACY-Charades-AR/LEMMA-TC.json")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    import transformers

    assert transformers.__version__ == "4.41.1", f"run under transformers 4.41.1, not {transformers.__version__}"
    sys.path.insert(0, str(args.original))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    legacy_dir = args.original / "evaluation/ADL-X/legacy/eval_data"
    files = {name: (args.adlmcq / name if (args.adlmcq / name).is_file() else legacy_dir / name)
             for name in MCQ_SCRIPTS}
    # the two files not in ../shared/data travel with the tests (CC-BY 4.0, ADL-X/LLAVIDAL)
    for name in ("LEGACY-Smarthome-AR.json", "LEGACY-TSU-TC.json"):
        (out / "legacy_adlmcq").mkdir(exist_ok=True)
        with gzip.GzipFile(out / "legacy_adlmcq" / f"{name}.gz", "wb", mtime=0) as handle:
            handle.write((legacy_dir / name).read_bytes())

    base = out / "llava_lightening_tiny"
    sys.modules.setdefault("decord", types.SimpleNamespace(VideoReader=None, cpu=None))
    sys.modules.setdefault("decord._ffi", types.ModuleType("decord._ffi"))
    sys.modules.setdefault("decord._ffi.base", types.SimpleNamespace(DECORDError=RuntimeError))
    vocab_size = write_base_folder(base, training_corpus(list(files.values())))
    make_projection(base, out / "llavidal_weights.bin")
    expected = {"made_by": "tests/fidelity/make_original_expected.py", "original": "ADL-X/LLAVIDAL 7368801",
                "transformers": transformers.__version__, "base_vocab_size": vocab_size,
                "training": training_tokenization(base), "inference": inference_ids(base)}
    (out / "expected_tokenization.json").write_text(json.dumps(expected, indent=1) + "\n")
    expected_logits(base, out / "llavidal_weights.bin", out / "expected_logits.safetensors")
    mcq = mcq_expectations(args.original, files)
    with gzip.GzipFile(out / "expected_adlmcq.json.gz", "wb", mtime=0) as handle:
        handle.write(json.dumps({"video_dir": VIDEO_DIR, "files": mcq}).encode("utf-8"))
    print({name: len(rows) for name, rows in mcq.items()})


if __name__ == "__main__":
    main()
