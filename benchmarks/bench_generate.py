"""Generation speed: the llavidal pipeline vs the bare LM's ``generate`` at the same prefix length, and
batched vs sequential answers, side by side in one process.

The fused model is a random Llama (``--hidden``, ``--layers``) with the original's video cue (356 feature rows
of 1024). (a) ``LlavidalPipeline`` answers one question about precomputed video features: it builds the
prompt, splices the projected features in at prefill and decodes greedily with its stop criteria; (b) the
bare LM's ``generate`` runs on random token ids of the same prompt length. Both produce exactly
``--new-tokens`` tokens (``min_new_tokens``), so tokens/s compare like for like. Then (c) a batch of
``--batch`` questions in one call vs (d) the same questions one call at a time.

    python benchmarks/bench_generate.py [--hidden 512] [--layers 4] [--new-tokens 64] [--batch 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

QUESTION = "What is the person doing in the video?"


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def build(hidden: int, layers: int):
    from llavidal_core.inference import LlavidalPipeline
    from llavidal_core.modeling import LlavidalForConditionalGeneration
    from llavidal_core.processing import LlavidalProcessor
    from llavidal_core.seed_cues import VIDEO
    from llavidal_core.testing.tiny_models import build_tiny_causal_lm, build_tiny_tokenizer

    processor = LlavidalProcessor(build_tiny_tokenizer(), [VIDEO])
    heads = max(1, hidden // 64)
    language_model = build_tiny_causal_lm(hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                                          num_hidden_layers=layers, num_attention_heads=heads,
                                          num_key_value_heads=heads)
    model = LlavidalForConditionalGeneration.from_language_model(language_model, [VIDEO], processor.cue_token_ids)
    return LlavidalPipeline(model.eval(), processor), language_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    pipe, language_model = build(args.hidden, int(args.layers))
    n = args.new_tokens
    for config in (pipe.model.generation_config, language_model.generation_config):
        config.min_new_tokens = n  # both sides decode exactly n tokens
    features = [torch.randn(356, 1024, generator=torch.Generator().manual_seed(i)) for i in range(args.batch)]
    prompt = pipe.processor([[{"from": "human", "value": pipe.user_message(QUESTION, {"video": features[0]})}]],
                            [{"video": features[0]}], add_generation_prompt=True)
    prompt_length = prompt["input_ids"].shape[1]
    token_ids = torch.randint(4, 90, (1, prompt_length))

    def pipeline_one():
        pipe(features={"video": features[0]}, question=QUESTION, max_new_tokens=n)

    def bare_one():
        with torch.no_grad():
            language_model.generate(input_ids=token_ids, attention_mask=torch.ones_like(token_ids),
                                    max_new_tokens=n, do_sample=False, pad_token_id=3)

    def batched():
        pipe(features=[{"video": one} for one in features], question=[QUESTION] * args.batch, max_new_tokens=n)

    def sequential():
        for one in features:
            pipe(features={"video": one}, question=QUESTION, max_new_tokens=n)

    with torch.inference_mode():
        pipeline_s = median_seconds(pipeline_one, args.repeats)
        bare_s = median_seconds(bare_one, args.repeats)
        batched_s = median_seconds(batched, args.repeats)
        sequential_s = median_seconds(sequential, args.repeats)

    print(f"Llama hidden {args.hidden}, {args.layers} layers; prompt {prompt_length} tokens "
          f"(356 video rows); {n} new tokens; {torch.get_num_threads()} threads")
    print(f"(a) pipeline, 1 question          {pipeline_s:7.3f} s  {n / pipeline_s:8.1f} tokens/s")
    print(f"(b) bare LM generate, same length  {bare_s:7.3f} s  {n / bare_s:8.1f} tokens/s")
    print(f"    pipeline / bare time ratio     {pipeline_s / bare_s:7.3f}  (target: within 1.10)")
    print(f"(c) batch of {args.batch} in one call        {batched_s:7.3f} s  {args.batch * n / batched_s:8.1f} tokens/s")
    print(f"(d) {args.batch} calls one at a time        {sequential_s:7.3f} s  {args.batch * n / sequential_s:8.1f} tokens/s")
    print(f"    batched speed-up               {sequential_s / batched_s:7.3f}x")


if __name__ == "__main__":
    main()
