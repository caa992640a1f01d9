"""Test kits of the video cue, for this plugin's tests, the benchmarks and other plugins' tests: synthetic
clips written with PyAV and a tiny random CLIP vision tower (`llavidal_video.testing.videos`), and a
straightforward copy of the original extraction script (`llavidal_video.testing.original_pipeline`)."""
