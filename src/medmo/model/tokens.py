"""Count the tokens a model reads for a chat-templated prompt, without processing pixels.

One counter for everyone who budgets by length: sequence packing (medmo.train.packing plans
packs from exact sample lengths) and the server (medmo.serve refuses prompts over
`max_prompt_tokens`). The template text holds one placeholder token per image; the processor
expands it to a number of tokens that depends only on the image size, so the count comes from
`(width, height)` alone and equals the length of the processor's real encoding (tests compare
both).
"""
from __future__ import annotations

from typing import Iterable


def image_token_count(processor, width: int, height: int) -> int:
    """Placeholder tokens the processor will insert for an image of this size."""
    ip = processor.image_processor
    return ip.get_number_of_image_patches(height, width) // (ip.merge_size ** 2)


def token_count(processor, text: str, image_sizes: Iterable[tuple[int, int]]) -> int:
    """Tokens of chat-templated `text` once each image's one placeholder token is expanded;
    `image_sizes` are (width, height) in placeholder order."""
    n = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    return n + sum(image_token_count(processor, w, h) - 1 for w, h in image_sizes)
