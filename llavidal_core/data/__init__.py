"""Training data: instruction files, feature lookup per cue, the dataset and its collator."""
