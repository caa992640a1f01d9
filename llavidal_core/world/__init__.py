"""The miniature ADL world: a small, seeded, synthetic set of daily-activity videos in which the cues
genuinely carry the answer (see `llavidal_core.world.build`). Drawing people needs llavidal-pose."""
