"""Training from YAML recipes: `recipe` (the typed recipe and its ``key=value`` overrides), `model_setup`
(cue specs, base LM + cues -> fusion model, what trains, the MMPro hand-off), `trainer` (the transformers
Trainer with tokens/s and skip counts in its logs, JSONL logging) and `runner` (the recipe, stage by stage).

Importing this package is cheap; torch and transformers are imported by the modules that need them.
"""
