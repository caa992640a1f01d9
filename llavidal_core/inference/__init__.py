"""Inference: the pipeline from raw inputs to answers, multi-turn chat, stop sequences, memory estimates.

``from llavidal_core.inference import LlavidalPipeline`` imports torch and transformers.
"""

from llavidal_core.inference.chat import ChatSession
from llavidal_core.inference.pipeline import LlavidalPipeline

__all__ = ["ChatSession", "LlavidalPipeline"]
