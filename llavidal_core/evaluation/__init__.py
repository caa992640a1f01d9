"""Evaluation: ADLMCQ multiple-choice files, deterministic scoring and accuracy reports."""
