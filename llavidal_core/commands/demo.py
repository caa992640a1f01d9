"""Built-in ``llavidal demo``: the whole toolkit on the bundled miniature ADL world (see `llavidal_core.world.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from llavidal_core.hookspecs import hookimpl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("llavidal-demo"),
                        help="where the world, models, features, runs and results.json go (default: %(default)s); "
                             "a second run reuses what is there")
    parser.add_argument("--videos-per-performer", type=int, help="the world's size knob (default: 20)")
    parser.add_argument("--epochs", type=float, help="training epochs per cue set (default: 12)")
    parser.add_argument("--seed", type=int, help="seed of the models and their training; the world stays the same "
                                                 "(default: 0). Runs with other seeds show how much the numbers move")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from llavidal_core.world.demo import DemoConfig, run_demo

    config = DemoConfig()
    if args.videos_per_performer is not None:
        if args.videos_per_performer < 1:
            args.usage_parser.error("--videos-per-performer must be at least 1")
        config = dataclasses.replace(config, world=dataclasses.replace(
            config.world, videos_per_performer=args.videos_per_performer))
    if args.epochs is not None:
        if args.epochs <= 0:
            args.usage_parser.error("--epochs must be positive")
        config = dataclasses.replace(config, epochs=args.epochs)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    run_demo(args.out, config)
    return 0


@hookimpl
def llavidal_register_commands(register):
    register(("demo",), help="train and evaluate on the bundled miniature ADL world (a few minutes on a CPU)",
             add_arguments=add_arguments, run=run)
