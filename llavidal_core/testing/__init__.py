"""Test helpers for llavidal and its plugins: tiny random models, a fake cue, isolated plugin managers.

The pytest fixtures live in `llavidal_core.testing.pytest_plugin`, which pytest loads through the
``pytest11`` entry point of llavidal-core. Everything here is importable without downloads.
"""
