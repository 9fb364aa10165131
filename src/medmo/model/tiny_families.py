"""Tiny offline checkpoints of every model family in MedMO's tables: `medmo tiny --arch NAME`.

Each builder returns (model, processor) made of the family's real transformers classes
(config, model, image processor, processor) at toy sizes, with the byte-level BPE of
medmo.model.tiny_base carrying the family's special tokens and a chat template in the
family's own turn format. Saved with `save_pretrained`, each folder loads back through
`AutoModelForImageTextToText` / `AutoProcessor` exactly like the hub checkpoint, so the
evaluation path of the real model (chat template, image-token expansion, generation,
decoding) is what the tests run.

    arch             family of                          image tokens per image here
    qwen3_vl         MedMO, Qwen3-VL                    1 per 32x32 px (patch 16, merge 2)
    qwen3_vl_moe     Qwen3-VL-30B-A3B (MoE text)        same as qwen3_vl
    qwen2_5_vl       Qwen2.5-VL, Lingshu                1 per 28x28 px (patch 14, merge 2)
    internvl         InternVL3 (hf format)              4 per 64x64 tile, up to 4 tiles + thumbnail
    gemma3           Gemma 3, MedGemma                  16 (SigLIP 64 px, patch 8, pooled 4x4)
    llava_onevision  LLaVA-OneVision                    16 base + AnyRes tiles (SigLIP 32 px, patch 8)

Departures from the real checkpoints: sizes only, every family shares one ~400-token
vocabulary (a byte-level BPE, where Gemma uses SentencePiece), and the chat templates
keep each family's turn markers and image placeholder but drop tool calling and default
system prompts (Qwen2.5-VL's "You are a helpful assistant." is kept). Nothing is downloaded.
"""
from __future__ import annotations

from typing import Callable

from medmo.model.tiny_base import TinyConfig, _mrope, build_config, build_model, build_processor, build_tokenizer
from medmo.registry import Registry

ARCHS: Registry[Callable[[TinyConfig], tuple]] = Registry("tiny architecture")

# ChatML turns; `image` is what one image becomes in the prompt (the processor expands it).
_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}IMAGE{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN2_5_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    + _CHATML.replace("IMAGE", "<|vision_start|><|image_pad|><|vision_end|>")
)
INTERNVL_TEMPLATE = _CHATML.replace("IMAGE", "<IMG_CONTEXT>\n")
# LLaVA-OneVision puts a turn's images first, then its text.
LLAVA_OV_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Gemma 3: <start_of_turn>user|model, a system turn folded into the first user turn.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% set ns.system = (message['content'] if message['content'] is string else message['content'][0]['text']) %}"
    "{% else %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if ns.system %}{{ ns.system }}\n\n{% set ns.system = '' %}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<start_of_image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
CHATML_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _qwen2_text(cfg: TinyConfig, tok) -> dict:
    """A Qwen2-style decoder (InternVL's and LLaVA-OneVision's language model)."""
    return dict(model_type="qwen2", vocab_size=len(tok), hidden_size=cfg.text_hidden,
                intermediate_size=cfg.text_intermediate, num_hidden_layers=cfg.text_layers,
                num_attention_heads=cfg.text_heads, num_key_value_heads=cfg.text_kv_heads,
                max_position_embeddings=4096, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)


def _siglip(cfg: TinyConfig, image_size: int, patch_size: int) -> dict:
    return dict(model_type="siglip_vision_model", hidden_size=cfg.vision_hidden,
                intermediate_size=cfg.vision_intermediate, num_hidden_layers=cfg.vision_depth,
                num_attention_heads=cfg.vision_heads, image_size=image_size, patch_size=patch_size)


def _finish(model, tok, eos: list[str]):
    """Greedy generation that stops at the family's end-of-turn tokens."""
    ids = tok.convert_tokens_to_ids
    model.generation_config.eos_token_id = [ids(t) for t in eos]
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.do_sample = False
    return model


@ARCHS.register("qwen3_vl")
def qwen3_vl(cfg: TinyConfig):
    tok = build_tokenizer(cfg)
    return build_model(cfg, tok), build_processor(cfg, tok)


@ARCHS.register("qwen3_vl_moe")
def qwen3_vl_moe(cfg: TinyConfig):
    import torch
    from transformers import Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration

    tok = build_tokenizer(cfg)
    dense = build_config(cfg, tok)  # the dense tiny config, with experts in every text layer
    text = dense.text_config.to_dict()
    text.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=cfg.text_intermediate // 2,
                decoder_sparse_step=1)
    config = Qwen3VLMoeConfig(text_config=text, vision_config=dense.vision_config.to_dict(),
                              image_token_id=dense.image_token_id, video_token_id=dense.video_token_id,
                              vision_start_token_id=dense.vision_start_token_id,
                              vision_end_token_id=dense.vision_end_token_id, tie_word_embeddings=True)
    torch.manual_seed(cfg.seed)
    model = _finish(Qwen3VLMoeForConditionalGeneration(config), tok, ["<|im_end|>", "<|endoftext|>"])
    return model, build_processor(cfg, tok)


@ARCHS.register("qwen2_5_vl")
def qwen2_5_vl(cfg: TinyConfig):
    import torch
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    tok = build_tokenizer(cfg, chat_template=QWEN2_5_TEMPLATE)
    ids = tok.convert_tokens_to_ids
    head_dim = cfg.text_hidden // cfg.text_heads
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=cfg.text_hidden, intermediate_size=cfg.text_intermediate,
                         num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads,
                         num_key_value_heads=cfg.text_kv_heads, max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope(head_dim)},
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id),
        # window attention over 4x4 merged tokens (112 px), full attention in the last block, as in the 7B
        vision_config=dict(depth=cfg.vision_depth, hidden_size=cfg.vision_hidden, intermediate_size=cfg.vision_intermediate,
                           num_heads=cfg.vision_heads, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           out_hidden_size=cfg.text_hidden, window_size=112, fullatt_block_indexes=[cfg.vision_depth - 1]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    torch.manual_seed(cfg.seed)
    size = {"shortest_edge": 28 * 28 * 4, "longest_edge": cfg.max_pixels}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=14, merge_size=2, temporal_patch_size=2, size=size),
        video_processor=Qwen2VLVideoProcessor(patch_size=14, merge_size=2, temporal_patch_size=2, size=size),
        tokenizer=tok, chat_template=QWEN2_5_TEMPLATE)
    return _finish(Qwen2_5_VLForConditionalGeneration(config), tok, ["<|im_end|>", "<|endoftext|>"]), processor


@ARCHS.register("internvl")
def internvl(cfg: TinyConfig):
    import torch
    from transformers import (GotOcr2ImageProcessor, InternVLConfig, InternVLForConditionalGeneration,
                              InternVLProcessor, InternVLVideoProcessor)

    named = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
             "video_token": "<video>"}
    tok = build_tokenizer(cfg, special=CHATML_TOKENS + list(named.values()), named=named,
                          chat_template=INTERNVL_TEMPLATE,
                          extra=["<box>", "</box>", "<ref>", "</ref>", "<think>", "</think>", "<answer>", "</answer>"])
    tile, patch, downsample = 64, 16, 0.5  # InternVL3: 448 px tiles, patch 14, pixel shuffle 0.5
    seq = int((tile // patch) ** 2 * downsample ** 2)
    config = InternVLConfig(
        vision_config=dict(hidden_size=cfg.vision_hidden, num_hidden_layers=cfg.vision_depth,
                           num_attention_heads=cfg.vision_heads, intermediate_size=cfg.vision_intermediate,
                           image_size=[tile, tile], patch_size=[patch, patch]),
        text_config=_qwen2_text(cfg, tok), image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=seq, downsample_ratio=downsample, vision_feature_layer=-1, tie_word_embeddings=True,
    )
    torch.manual_seed(cfg.seed)
    size = {"height": tile, "width": tile}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=True, min_patches=1, max_patches=4,
                                              image_mean=[0.5] * 3, image_std=[0.5] * 3),
        video_processor=InternVLVideoProcessor(size=size), tokenizer=tok, image_seq_length=seq,
        chat_template=INTERNVL_TEMPLATE)
    return _finish(InternVLForConditionalGeneration(config), tok, ["<|im_end|>", "<|endoftext|>"]), processor


@ARCHS.register("gemma3")
def gemma3(cfg: TinyConfig):
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    named = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    tok = build_tokenizer(cfg, special=["<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>",
                                        *named.values()],
                          named=named, chat_template=GEMMA3_TEMPLATE, eos="<eos>", pad="<pad>", bos="<bos>")
    ids = tok.convert_tokens_to_ids
    image, patch, per_image = 64, 8, 16  # Gemma 3: 896 px, patch 14, 256 tokens (pooled 4x4)
    head_dim = cfg.text_hidden // cfg.text_heads
    config = Gemma3Config(
        text_config=dict(vocab_size=len(tok), hidden_size=cfg.text_hidden, intermediate_size=cfg.text_intermediate,
                         num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads,
                         num_key_value_heads=cfg.text_kv_heads, head_dim=head_dim, query_pre_attn_scalar=head_dim,
                         sliding_window=64, max_position_embeddings=4096, pad_token_id=ids("<pad>"),
                         bos_token_id=ids("<bos>"), eos_token_id=ids("<eos>")),
        vision_config=_siglip(cfg, image, patch), mm_tokens_per_image=per_image,
        boi_token_index=ids("<start_of_image>"), eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )
    torch.manual_seed(cfg.seed)
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(size={"height": image, "width": image}, image_mean=[0.5] * 3,
                                             image_std=[0.5] * 3),
        tokenizer=tok, image_seq_length=per_image, chat_template=GEMMA3_TEMPLATE)
    return _finish(Gemma3ForConditionalGeneration(config), tok, ["<end_of_turn>", "<eos>"]), processor


@ARCHS.register("llava_onevision")
def llava_onevision(cfg: TinyConfig):
    import torch
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor)

    named = {"image_token": "<image>", "video_token": "<video>"}
    tok = build_tokenizer(cfg, special=CHATML_TOKENS + list(named.values()), named=named,
                          chat_template=LLAVA_OV_TEMPLATE)
    ids = tok.convert_tokens_to_ids
    image, patch = 32, 8  # LLaVA-OneVision: SigLIP 384 px, patch 14, AnyRes tiles up to 6x6
    pinpoints = [[image * h, image * w] for h in (1, 2) for w in (1, 2)]
    config = LlavaOnevisionConfig(
        text_config=_qwen2_text(cfg, tok), vision_config=_siglip(cfg, image, patch),
        image_token_index=ids("<image>"), video_token_index=ids("<video>"), vision_feature_select_strategy="full",
        vision_feature_layer=-1, image_grid_pinpoints=pinpoints, vision_aspect_ratio="anyres_max_9",
        tie_word_embeddings=True,
    )
    torch.manual_seed(cfg.seed)
    size = {"height": image, "width": image}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pinpoints),
        video_processor=LlavaOnevisionVideoProcessor(size=size), tokenizer=tok,
        num_image_tokens=(image // patch) ** 2, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9", chat_template=LLAVA_OV_TEMPLATE)
    return _finish(LlavaOnevisionForConditionalGeneration(config), tok, ["<|im_end|>", "<|endoftext|>"]), processor

