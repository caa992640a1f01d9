"""Built-in ``llavidal convert ...`` commands: the seed's projector checkpoints and LLaVA deltas.

Registered through the commands hook; torch and transformers are imported only when a command runs.
"""

from __future__ import annotations

from pathlib import Path

from llavidal_core.hookspecs import hookimpl


def add_legacy_arguments(parser) -> None:
    parser.add_argument("--base", required=True,
                        help="the base LM the checkpoint was trained on: a folder or Hub repo id "
                             "(e.g. mmaaz60/LLaVA-7B-Lightening-v1-1)")
    parser.add_argument("--projection", required=True, type=Path,
                        help="the seed's llavidal_weights.bin or mm_projector.bin (projectors + embed_tokens)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the converted model to")
    parser.add_argument("--tokenization", choices=("sentencepiece_legacy", "native"), default="sentencepiece_legacy",
                        help="sentencepiece_legacy (default): the token ids the original trained and evaluated "
                             "with (transformers 4.x's slow LLaMA tokenizer); native: the tokenizer as it is now")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder whole")


def run_legacy(args) -> int:
    from llavidal_core.conversion.legacy import convert_legacy

    print(convert_legacy(args.base, args.projection, args.out, tokenization=args.tokenization,
                         overwrite=args.overwrite).summary())
    return 0


def add_apply_delta_arguments(parser) -> None:
    parser.add_argument("--base", required=True, help="the base weights (e.g. LLaMA-7B): a folder or Hub repo id")
    parser.add_argument("--delta", required=True, help="the delta weights: a folder or Hub repo id")
    parser.add_argument("--out", required=True, type=Path, help="folder to write base + delta to")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder whole")


def run_apply_delta(args) -> int:
    from llavidal_core.conversion.delta import apply_delta

    print(apply_delta(args.base, args.delta, args.out, overwrite=args.overwrite).summary())
    return 0


@hookimpl
def llavidal_register_commands(register):
    register(("convert", "legacy"),
             help="convert a seed (LLAVIDAL / Video-ChatGPT) projector checkpoint into a model folder",
             add_arguments=add_legacy_arguments, run=run_legacy)
    register(("convert", "apply-delta"), help="rebuild weights from a base model and a delta, shard by shard",
             add_arguments=add_apply_delta_arguments, run=run_apply_delta)
