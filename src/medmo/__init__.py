"""medmo: a medical multimodal foundation model on Qwen3-VL, and everything around it."""
__version__ = "0.1.0"
