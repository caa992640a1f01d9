"""Time the fusion head against the bare LM: forward + backward, side by side, in one process.

The fused model embeds the tokens, projects the seed's three cues (356 video rows of 1024, 256 pose rows of
216, 2 objects x 8 rows of 512) and scatters them into the embeddings before running the LM; the bare LM
runs on ready ``inputs_embeds`` of the same length. Both train the whole LM (the fused model also its
projectors), with the loss on the last quarter of the positions. Runs alternate between the two models; each
step is timed by wall clock and by this process's CPU time, and the median of each is reported with the ratio
fused / bare (target: under 1.05 at sequence length >= 1024). On a shared machine, where other processes
stretch the wall clock, the CPU-time ratio (one thread by default) is the one to trust.

    python benchmarks/bench_fusion.py [--seq-lens 1024 2048] [--repeats 5] [--hidden 512 --layers 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llavidal_core.modeling import LlavidalForConditionalGeneration
from llavidal_core.seed_cues import LLAVIDAL_CUES, OBJECT, POSE, VIDEO

NUM_OBJECTS = 2


def llama_config(hidden: int, layers: int, vocab: int) -> LlamaConfig:
    return LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 11 // 4, num_hidden_layers=layers,
                       num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64, max_position_embeddings=4096)


def build_models(hidden: int, layers: int, vocab: int):
    torch.manual_seed(0)
    bare = LlamaForCausalLM(llama_config(hidden, layers, vocab)).train()
    token_ids = {spec.name: {"patch": vocab + i, "start": vocab + 3 + 2 * i, "end": vocab + 4 + 2 * i}
                 for i, spec in enumerate(LLAVIDAL_CUES)}
    fused_lm = LlamaForCausalLM(llama_config(hidden, layers, vocab))
    fused = LlavidalForConditionalGeneration.from_language_model(fused_lm, LLAVIDAL_CUES, token_ids).train()
    return bare, fused


def fused_inputs(model, seq_len: int, vocab: int):
    ids = model.config.cue_token_ids
    rows = {"video": VIDEO.num_tokens, "object": OBJECT.num_rows(NUM_OBJECTS), "pose": POSE.num_tokens}
    cue_runs = [tok for cue in ("video", "object", "pose")
                for tok in [ids[cue]["start"], *[ids[cue]["patch"]] * rows[cue], ids[cue]["end"]]]
    if seq_len <= len(cue_runs) + 8:
        raise SystemExit(f"sequence length {seq_len} is too short for the {len(cue_runs)} cue positions")
    text = torch.randint(4, vocab, (seq_len - len(cue_runs),))
    input_ids = torch.cat([text[:8], torch.tensor(cue_runs), text[8:]]).unsqueeze(0)
    labels = torch.full_like(input_ids, -100)
    labels[:, -seq_len // 4:] = input_ids[:, -seq_len // 4:]
    features = {"video": torch.randn(1, rows["video"], VIDEO.feature_dim),
                "object": torch.randn(1, rows["object"], OBJECT.feature_dim),
                "pose": torch.randn(1, rows["pose"], POSE.feature_dim)}
    return {"input_ids": input_ids, "labels": labels, "cue_features": features}


def step_seconds(model, inputs) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one forward + backward step."""
    model.zero_grad(set_to_none=True)
    wall, cpu = time.perf_counter(), time.process_time()
    model(**inputs).loss.backward()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32003)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    bare, fused = build_models(args.hidden, args.layers, args.vocab)
    print(f"Llama hidden {args.hidden}, {args.layers} layers, vocab {args.vocab} (+9 cue tokens), {args.threads} threads, "
          f"median of {args.repeats} forward+backward steps each, batch 1; seconds per step")
    print(f"{'seq len':>8} {'cue rows':>9} {'bare cpu':>9} {'fused cpu':>10} {'ratio':>6} "
          f"{'bare wall':>10} {'fused wall':>11} {'ratio':>6}")
    for seq_len in args.seq_lens:
        inputs = fused_inputs(fused, seq_len, args.vocab)
        embeds = torch.randn(1, seq_len, args.hidden)
        bare_inputs = {"inputs_embeds": embeds, "labels": inputs["labels"]}
        step_seconds(bare, bare_inputs)  # warm-up
        step_seconds(fused, inputs)
        bare_times, fused_times = [], []
        for _ in range(args.repeats):
            bare_times.append(step_seconds(bare, bare_inputs))
            fused_times.append(step_seconds(fused, inputs))
        cue_rows = sum(t.shape[1] for t in inputs["cue_features"].values())
        bare_wall, bare_cpu = (statistics.median(t[k] for t in bare_times) for k in (0, 1))
        fused_wall, fused_cpu = (statistics.median(t[k] for t in fused_times) for k in (0, 1))
        print(f"{seq_len:>8} {cue_rows:>9} {bare_cpu:>9.3f} {fused_cpu:>10.3f} {fused_cpu / bare_cpu:>6.3f} "
              f"{bare_wall:>10.3f} {fused_wall:>11.3f} {fused_wall / bare_wall:>6.3f}", flush=True)


if __name__ == "__main__":
    main()
