"""The pieces of every tiny model, built offline: tokenizer, TinyConfig, Qwen3-VL config,
model and processor (same classes and code path as the 8B model).

medmo.model.tiny (`build_tiny`) and medmo.model.tiny_families (the other families) build
on these; this module imports neither, so they import it without a circle.

- a byte-level BPE tokenizer (Qwen2's pre-tokenizer: digits split one by one) trained on
  a small built-in corpus of medical prompt and answer text, with Qwen's special tokens
  (`<|im_start|>`, `<|im_end|>`, `<|vision_start|>`, `<|image_pad|>`, ...) and a
  Qwen3-style chat template (with `{% generation %}` marks for assistant-only loss);
- a `Qwen3VLProcessor`: patch 16, merge 2, so one visual token per 32x32 pixels;
- a `Qwen3VLForConditionalGeneration` of a few million parameters with DeepStack
  indexes set (vision layers 1-3 feed the first LLM layers).

Departure from Qwen3-VL: sizes only (hidden 256, 4 layers; vision hidden 128, depth 4),
and a ~630-token vocabulary instead of 151k. Nothing is downloaded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
# Plain-text tags MedMO emits; single tokens keep grounding answers short for the tiny model.
EXTRA_TOKENS = ["<box>", "</box>", "<think>", "</think>", "<answer>", "</answer>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}<|im_start|>assistant\n{% generation %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>{% endgeneration %}{{ '\\n' }}"
    "{% else %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' or 'image' in c %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' or 'video' in c %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The BPE is trained on this text so common words of medical prompts, the chat roles and the box
# brackets become single tokens, as in Qwen's vocabulary (digits stay one token each).
_CORPUS = """
Detect and localize all cells in the image. Locate the lesion. Find the nodule in the chest X-ray.
cell cells nucleus nuclei lesion nodule mass effusion pneumonia pneumothorax atelectasis cardiomegaly
infiltrate fracture tumor opacity consolidation edema normal abnormal left right upper lower lobe
How many cells are in the image? Is there a cell in the image? Answer with a single word or number.
Answer the question using a single word or phrase. Please answer yes or no. yes no Yes No
Findings: Impression: The lungs are clear. No acute cardiopulmonary abnormality. heart size is normal.
What is the modality? CT MRI X-ray ultrasound pathology microscopy fundus dermoscopy brain liver kidney
Answer with the option's letter from the given choices directly. A B C D E The answer is
Please output the bounding box coordinates. 0 1 2 3 4 5 6 7 8 9 , [ ] [[ ]] ( ) : . ? !
system
user
assistant
yes
no
[[1, 2], [3, 4]]
"""


@dataclass
class TinyConfig:
    """Sizes of the tiny model (the defaults are DESIGN.md's measured 4.9M config)."""

    text_hidden: int = field(default=256, metadata={"help": "language model hidden size"})
    text_layers: int = field(default=4, metadata={"help": "language model layers"})
    text_heads: int = field(default=4, metadata={"help": "language model attention heads"})
    text_kv_heads: int = field(default=2, metadata={"help": "language model key/value heads"})
    text_intermediate: int = field(default=768, metadata={"help": "language model MLP size"})
    vision_hidden: int = field(default=128, metadata={"help": "vision encoder hidden size"})
    vision_depth: int = field(default=4, metadata={"help": "vision encoder layers"})
    vision_heads: int = field(default=4, metadata={"help": "vision encoder attention heads"})
    vision_intermediate: int = field(default=384, metadata={"help": "vision encoder MLP size"})
    deepstack: tuple[int, ...] = field(default=(1, 2, 3), metadata={
        "help": "vision layers whose features are stacked into the language model (Qwen3-VL DeepStack)"})
    vocab_merges: int = field(default=350, metadata={
        "help": "BPE merges learned on the corpus above (350: every corpus word is one token)"})
    min_pixels: int = field(default=32 * 32 * 4, metadata={"help": "processor's lower pixel budget per image"})
    max_pixels: int = field(default=512 * 512, metadata={"help": "processor's upper pixel budget per image"})
    seed: int = field(default=0, metadata={"help": "seed of the random weights"})


def build_tokenizer(cfg: TinyConfig, special: list[str] | None = None, named: dict[str, str] | None = None,
                    chat_template: str = CHAT_TEMPLATE, eos: str = "<|im_end|>", pad: str = "<|endoftext|>",
                    bos: str | None = None, extra: list[str] | None = None):
    """A byte-level BPE (Qwen2's pre-tokenizer) trained on the built-in corpus, with a family's tokens.

    `special`: the family's special tokens; `named`: the
    named ones a processor reads as attributes (InternVL's `start_image_token`, Gemma 3's
    `boi_token`, ...); `extra`: plain added tokens. The defaults are Qwen3-VL's.
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    special = special or SPECIAL_TOKENS
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=len(alphabet) + cfg.vocab_merges, initial_alphabet=alphabet, show_progress=False, special_tokens=[]
    )
    tok.train_from_iterator(_CORPUS.split("\n") * 4, trainer=trainer)
    vocab = tok.get_vocab()
    merges = json.loads(tok.to_str())["model"]["merges"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    qtok = Qwen2Tokenizer(vocab=vocab, merges=merges, chat_template=chat_template,
                          **({"extra_special_tokens": named} if named else {}))
    vocab = qtok.get_vocab()  # holds <|endoftext|>: Qwen2Tokenizer's default unk token
    qtok.add_special_tokens({"additional_special_tokens": [t for t in special if t not in vocab]},
                            replace_extra_special_tokens=False)
    qtok.add_tokens(EXTRA_TOKENS if extra is None else extra)
    qtok.eos_token, qtok.pad_token = eos, pad
    if bos is not None:
        qtok.bos_token = bos
    qtok.padding_side = "left"
    return qtok


def build_processor(cfg: TinyConfig, tokenizer):
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    size = {"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}
    image_processor = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2, size=size,
                                            image_mean=[0.5] * 3, image_std=[0.5] * 3)
    video_processor = Qwen3VLVideoProcessor(patch_size=16, merge_size=2, temporal_patch_size=2, size=size)
    return Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                            chat_template=CHAT_TEMPLATE)


def build_config(cfg: TinyConfig, tokenizer):
    """The tiny Qwen3VLConfig: cfg's sizes, the tokenizer's vision token ids."""
    from transformers import Qwen3VLConfig

    ids = tokenizer.convert_tokens_to_ids
    text_head_dim = cfg.text_hidden // cfg.text_heads
    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=cfg.text_intermediate,
            num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads,
            num_key_value_heads=cfg.text_kv_heads, head_dim=text_head_dim, max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope(text_head_dim),
                             "mrope_interleaved": True},
            pad_token_id=ids("<|endoftext|>"), tie_word_embeddings=True,
        ),
        vision_config=dict(
            depth=cfg.vision_depth, hidden_size=cfg.vision_hidden, intermediate_size=cfg.vision_intermediate,
            num_heads=cfg.vision_heads, patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
            out_hidden_size=cfg.text_hidden, num_position_embeddings=1024,
            deepstack_visual_indexes=list(cfg.deepstack),
        ),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )


def build_model(cfg: TinyConfig, tokenizer):
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(cfg.seed)
    ids = tokenizer.convert_tokens_to_ids
    model = Qwen3VLForConditionalGeneration(build_config(cfg, tokenizer))
    model.generation_config.eos_token_id = [ids("<|im_end|>"), ids("<|endoftext|>")]
    model.generation_config.pad_token_id = ids("<|endoftext|>")
    model.generation_config.do_sample = False
    return model


def _mrope(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies over (t, h, w) in Qwen3-VL's 24:20:20 proportion."""
    half = head_dim // 2
    h = w = (half * 20) // 64
    return [half - h - w, h, w]
