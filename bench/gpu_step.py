"""Forward+backward time of a randomly initialized Qwen3-VL at the 2B/4B/8B shapes, on one GPU,
through the loss path medmo's SFT trainer takes.

    .venv/bin/python bench/gpu_step.py                          # 2b, 4b, 8b; packed rows of 8192 tokens
    .venv/bin/python bench/gpu_step.py --sizes 8b --tokens 4096 --checkpointing
    .venv/bin/python bench/gpu_step.py --peak-tflops 756       # a card not in SPEC_BF16_TFLOPS

Needs a CUDA GPU and refuses to run without one (nothing here is meaningful on CPU). No
download: the configs below are written out from the published config.json files of
Qwen/Qwen3-VL-{2B,4B,8B}-Instruct (text and vision towers, DeepStack indexes, M-RoPE
sections) and the weights are random. Each step is one packed row built by
medmo.train.packing (several samples, each a prompt with one image of a random size up to
768 px and an answer; labels on the answer tokens only, as the SFT collator sets them;
per-sample M-RoPE ids, attention kept within samples), in bf16, with the attention
implementation the recipes use (`--attn auto`: flash-attention-2 when it imports, else
SDPA; medmo.model.load resolves it), then `backward()`; no optimizer step (that is memory,
not compute). The loss is `trainer_loss`: what TRL's SFTTrainer computes, i.e. its fused LM
head, which on CUDA (with Triton) projects only the positions whose next token is labeled
and never builds the [tokens, vocabulary] logits; with a TRL that has no fused head, the
model's own loss over full logits, as that trainer would.

Prints, per size: real tokens per second and two MFUs, model FLOPs / (time x peak): against
the card's datasheet dense bf16 peak (`SPEC_BF16_TFLOPS` by device name, or --peak-tflops),
the usual MFU, and against the bf16 matmul rate measured here (an 8192^3 matmul loop), what
this card actually reaches. Model FLOPs count what training needs: 6 x matmul params x
tokens (3 passes: forward, and backward for inputs and for weights) for the LLM body, the
ViT and the mergers each over their own token counts, the LM head over labeled positions
only, plus attention: causal within each packed sample for the LLM (6 s^2 x heads x
head_dim per layer), full within each image for the ViT (12 p^2 x hidden). SDPA with a
block-diagonal mask computes the masked blocks, and a head without the compact path
projects every position; MFU credits neither. A size that runs out of memory is retried
with gradient checkpointing (MFU then excludes the recomputation, as usual). Keeps itself
under ~10 minutes (--steps 5).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass

import torch

# Published config.json values (text_config / vision_config) of Qwen/Qwen3-VL-{2B,4B,8B}-Instruct.
_VISION_SMALL = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16,
                     deepstack_visual_indexes=[5, 11, 17])
SHAPES = {
    "2b": dict(text=dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                         num_key_value_heads=8, tie_word_embeddings=True),
               vision=dict(_VISION_SMALL, out_hidden_size=2048)),
    "4b": dict(text=dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                         num_key_value_heads=8, tie_word_embeddings=True),
               vision=dict(_VISION_SMALL, out_hidden_size=2560)),
    "8b": dict(text=dict(hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
                         num_key_value_heads=8, tie_word_embeddings=False),
               vision=dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, out_hidden_size=4096,
                           deepstack_visual_indexes=[8, 16, 24])),
}
IMAGE_TOKEN, VIDEO_TOKEN, VISION_START, VISION_END = 151655, 151656, 151652, 151653
# Datasheet dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, matched in order as substrings of
# torch.cuda.get_device_name(): the more specific name first ("H100 PCIe" before "H100").
SPEC_BF16_TFLOPS = [
    ("H100 PCIe", 756), ("H100 NVL", 835), ("H200 NVL", 835), ("GH200", 989), ("H100", 989), ("H200", 989),
    ("B200", 2250), ("A100", 312), ("L40S", 362),
]


def qwen3_vl_config(size: str):
    """The Qwen3VLConfig of a published size ("2b", "4b", "8b")."""
    from transformers import Qwen3VLConfig

    if size not in SHAPES:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(SHAPES)}")
    s = SHAPES[size]
    text = dict(s["text"], vocab_size=151936, head_dim=128, hidden_act="silu", rms_norm_eps=1e-6,
                max_position_embeddings=262144,
                rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [24, 20, 20],
                                 "mrope_interleaved": True})
    vision = dict(s["vision"], patch_size=16, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                  hidden_act="gelu_pytorch_tanh", num_position_embeddings=2304)
    return Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=IMAGE_TOKEN,
                         video_token_id=VIDEO_TOKEN, vision_start_token_id=VISION_START,
                         vision_end_token_id=VISION_END, tie_word_embeddings=s["text"]["tie_word_embeddings"])


@dataclass
class MatmulParams:
    """Parameters that multiply every token of their tower (what 6 x params x tokens counts)."""

    llm: int  # decoder linears (the embedding lookup is not a matmul)
    head: int  # the LM head (tied or not: one matmul per projected position)
    vision: int  # ViT block linears + patch embedding (one matmul per patch)
    merger: int  # patch merger + DeepStack mergers (one matmul per merged token)
    total: int  # every parameter, for reference


def matmul_params(config) -> MatmulParams:
    """Counted on a meta-device model: no memory, no weights."""
    from transformers import Qwen3VLForConditionalGeneration

    with torch.device("meta"):
        model = Qwen3VLForConditionalGeneration(config)
    llm = head = vision = merger = 0
    for name, mod in model.named_modules():
        if not isinstance(mod, (torch.nn.Linear, torch.nn.Conv3d)):
            continue
        n = mod.weight.numel()
        if name == "lm_head":
            head += n
        elif ".visual.merger" in name or ".visual.deepstack_merger_list" in name:
            merger += n
        elif ".visual." in name:
            vision += n
        else:
            llm += n
    total = sum(p.numel() for p in model.parameters())
    return MatmulParams(llm=llm, head=head, vision=vision, merger=merger, total=total)


def train_flops(config, params: MatmulParams, sample_lengths: list[int], image_patches: list[int],
                causal: bool = True, passes: int = 3, head_tokens: int | None = None) -> float:
    """Model FLOPs of one step: `passes` = 3 for forward+backward, 1 for a forward alone.

    `sample_lengths`: LLM tokens of each packed sample; `image_patches`: ViT patches per image;
    `head_tokens`: positions the LM head projects (None: every token).
    """
    t, v = config.text_config, config.vision_config
    merge = v.spatial_merge_size ** 2
    tokens, patches = sum(sample_lengths), sum(image_patches)
    head_tokens = tokens if head_tokens is None else head_tokens
    dense = 2 * (params.llm * tokens + params.head * head_tokens + params.vision * patches
                 + params.merger * patches // merge)
    attn_width = t.num_attention_heads * t.head_dim
    llm_attn = 4 * attn_width * sum(s * s for s in sample_lengths) * t.num_hidden_layers * (0.5 if causal else 1)
    vit_attn = 4 * v.hidden_size * sum(p * p for p in image_patches) * v.depth
    return passes * (dense + llm_attn + vit_attn)


def synthetic_row(config, budget: int, rng: random.Random, min_px: int = 224,
                  max_px: int = 768) -> tuple[dict, list[int], list[int]]:
    """One packed row of samples up to `budget` tokens: each is a prompt (an image of min_px-max_px
    and 16-128 question tokens) and a 16-384-token answer, the only labeled part (short VQA
    answers to long reports; a spread, not MedMO's measured mix)."""
    from medmo.train.packing import pack_rows

    v = config.vision_config
    unit = v.patch_size * v.spatial_merge_size
    special = (config.image_token_id, config.vision_start_token_id, config.vision_end_token_id)
    feats, lengths, patches = [], [], []
    used = 0
    while True:
        gh, gw = (rng.randrange(min_px // unit, max_px // unit + 1) * v.spatial_merge_size for _ in range(2))
        n_img = gh * gw // v.spatial_merge_size ** 2
        n_question, n_answer = rng.randrange(16, 129), rng.randrange(16, 385)
        n = n_img + n_question + n_answer + 3
        if used + n > budget:
            break
        ids = torch.randint(0, min(special), (n,))  # ordinary text tokens
        ids[1], ids[2 + n_img] = config.vision_start_token_id, config.vision_end_token_id
        ids[2:2 + n_img] = config.image_token_id
        types = torch.zeros(n, dtype=torch.long)
        types[2:2 + n_img] = 1
        labels = ids.clone()
        labels[: n - n_answer] = -100
        feats.append({"input_ids": ids, "labels": labels, "mm_token_type_ids": types,
                      "pixel_values": torch.randn(gh * gw, 3 * v.temporal_patch_size * v.patch_size ** 2),
                      "image_grid_thw": torch.tensor([[1, gh, gw]])})
        lengths.append(n)
        patches.append(gh * gw)
        used += n
    return pack_rows([feats], pad_token_id=0, spatial_merge_size=v.spatial_merge_size), lengths, patches


def spec_peak(device_name: str, override_tflops: float | None = None) -> float | None:
    """The MFU denominator in FLOP/s: the override, else the card's datasheet dense bf16 peak, else None."""
    if override_tflops:
        return override_tflops * 1e12
    return next((tf * 1e12 for key, tf in SPEC_BF16_TFLOPS if key in device_name), None)


def fused_lm_head():
    """TRL's `add_fused_lm_head`, or None where the installed TRL (or no TRL) has none."""
    try:
        from trl.trainer.utils import add_fused_lm_head
    except ImportError:
        return None
    return add_fused_lm_head


LOSS_PATHS = {True: "TRL's fused LM head (only labeled positions projected on CUDA with Triton)",
              False: "the model's own loss over full logits (this TRL has no fused LM head)"}


def trainer_loss(model):
    """loss(batch) as TRL's SFTTrainer computes it for this model (what medmo's SFT stages run).

    TRL 1.x patches the model with a fused LM head and takes the mean negative log-likelihood
    of the labeled tokens from per-token log-probabilities, never building full logits. Where
    the installed TRL has no such head, its trainer takes the model's own loss, and so does this.
    """
    add = fused_lm_head()
    if add is None:
        return lambda batch: model(**batch).loss
    add(model, outputs=("log_probs", "entropy", "is_top1"))  # as SFTTrainer.__init__ does

    def loss(batch):
        out = model(**batch, fused_lm_head=True)
        return -out.log_probs.sum() / out.label_mask.sum().clamp(min=1)  # SFTTrainer.compute_loss
    return loss


def measured_bf16_peak(n: int = 8192, iters: int = 50) -> float:
    """Achieved bf16 matmul FLOP/s on this card (the measured-GEMM MFU's denominator)."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * iters / (time.perf_counter() - t0)


def bench_size(size: str, tokens: int, steps: int, checkpointing: bool, peaks: dict[str, float | None], seed: int,
               attn: str = "sdpa") -> dict:
    from transformers import Qwen3VLForConditionalGeneration

    config = qwen3_vl_config(size)
    config._attn_implementation = attn
    params = matmul_params(config)
    torch.manual_seed(seed)
    with torch.device("cuda"):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    if checkpointing:  # renamed in transformers 5.2x; the GPU machine's image has 5.17
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    model.train()
    loss_fn = trainer_loss(model)
    rng = random.Random(seed)
    rows = [synthetic_row(config, tokens, rng) for _ in range(steps + 2)]
    flops, real, times = 0.0, 0, []
    torch.cuda.reset_peak_memory_stats()
    for i, (batch, lengths, patches) in enumerate(rows):
        batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
        batch["pixel_values"] = batch["pixel_values"].to(torch.bfloat16)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss_fn(batch).backward()
        torch.cuda.synchronize()
        model.zero_grad(set_to_none=True)
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t0)
            labeled = int((batch["labels"][:, 1:] != -100).sum())  # next-token targets the loss needs
            flops += train_flops(config, params, lengths, patches, head_tokens=labeled)
            real += sum(lengths)
    seconds = sum(times)
    result = {"size": size, "params_b": params.total / 1e9, "tokens_per_s": real / seconds,
              "step_s": seconds / len(times), "peak_mem_gb": torch.cuda.max_memory_allocated() / 2**30}
    result.update({f"mfu_{k}": None if peak is None else flops / seconds / peak for k, peak in peaks.items()})
    del model
    torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["2b", "4b", "8b"], choices=sorted(SHAPES))
    parser.add_argument("--tokens", type=int, default=8192, help="packed row budget (tokens per step)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per size (after 2 warm-up steps)")
    parser.add_argument("--checkpointing", action="store_true",
                        help="gradient checkpointing from the start (otherwise only as a retry after out-of-memory)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attn", default="auto", help="attention implementation; auto as the 4B/8B recipes")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the card's dense bf16 peak in TFLOP/s (default: SPEC_BF16_TFLOPS by device name)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench/gpu_step.py needs a CUDA GPU and none is visible; nothing was measured.", file=sys.stderr)
        return 2
    from medmo.model.load import resolve_attn_implementation

    attn = resolve_attn_implementation(args.attn)
    name = torch.cuda.get_device_name()
    peaks = {"spec": spec_peak(name, args.peak_tflops), "gemm": measured_bf16_peak()}
    spec = f"{peaks['spec'] / 1e12:.0f}" if peaks["spec"] else "unknown (pass --peak-tflops)"
    print(f"{name}: bf16 peak {spec} TFLOP/s spec, {peaks['gemm'] / 1e12:.1f} measured (8192^3 GEMM); "
          f"torch {torch.__version__}; {attn}, bf16, packed rows of {args.tokens} tokens, {args.steps} timed steps"
          + (", gradient checkpointing" if args.checkpointing else ""))
    print(f"loss: {LOSS_PATHS[fused_lm_head() is not None]}; labels on answer tokens only")
    print(f"{'size':>5s} {'params':>8s} {'step s':>8s} {'tokens/s':>10s} {'MFU spec':>9s} {'MFU GEMM':>9s} "
          f"{'peak mem':>9s}")
    for size in args.sizes:
        r, note = None, ""
        for checkpointing in ([True] if args.checkpointing else [False, True]):
            try:
                r = bench_size(size, args.tokens, args.steps, checkpointing, peaks, args.seed, attn)
                note = " (gradient checkpointing)" if checkpointing and not args.checkpointing else ""
                break
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
        if r is None:
            print(f"{size:>5s} out of memory at {args.tokens} tokens even with gradient checkpointing: lower --tokens")
            continue
        mfu_spec = "n/a" if r["mfu_spec"] is None else f"{r['mfu_spec']:.1%}"
        print(f"{size:>5s} {r['params_b']:7.2f}B {r['step_s']:8.3f} {r['tokens_per_s']:10.0f} {mfu_spec:>9s} "
              f"{r['mfu_gemm']:9.1%} {r['peak_mem_gb']:8.1f}G{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
