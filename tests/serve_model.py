"""A tiny model fine-tuned to answer grounding prompts with one known box (serving tests).

The untrained tiny model emits noise, so "boxes come back and get drawn" would depend on
luck. Here the tiny checkpoint is fine-tuned (plain AdamW, loss on the answer only, 120
steps on two sequences: ~15 s of one CPU core) until greedy decoding of a grounding
prompt gives BOX_ANSWER. Two test-only changes make that fast and image-independent,
and are the only departures from a normal checkpoint:
- the vision mergers' output layers are zeroed, so image CONTENT no longer reaches the
  language model (the vision tower still runs; the number of visual tokens still varies);
- the saved processor has a small input budget (MAX_PIXELS), so every image becomes a
  handful of visual tokens.
Everything downstream (generation, parsing, grid -> pixels, drawing) is the real code.
Checked with five seeds (100-150 steps) on vqa_rad X-rays and blank images of other sizes.
"""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from medmo.model.prompts import GROUND_TARGET

TARGET = "lesion"
GROUND_PROMPT = GROUND_TARGET.format(target=TARGET)
BOX_GRID = [125, 250, 475, 690]  # x1, y1, x2, y2 on the 0-1000 grid
BOX_ANSWER = "lesion <box>[[125, 250, 475, 690]]</box>"
MAX_PIXELS = 128 * 128
LR = 5e-3


def train_fixed_answers(tiny_dir: Path, out_dir: Path, steps: int = 120, seed: int = 0) -> Path:
    """Fine-tune `tiny_dir` into `out_dir` (skipped when out_dir already holds the result)."""
    import torch

    from medmo.model.chat import to_conversation
    from medmo.model.load import load_model, load_processor

    if (out_dir / "config.json").exists():
        return out_dir
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and much faster on a busy machine
    torch.manual_seed(seed)
    processor = load_processor(tiny_dir, max_pixels=MAX_PIXELS)
    image = Image.new("RGB", (300, 200), 90)
    encoded = []  # (input_ids, labels, mm_token_type_ids, pixel_values, image_grid_thw) per sequence
    for question in (GROUND_PROMPT, "Is there a lesion?"):
        user = [{"role": "user", "content": f"<image>\n{question}"}]
        prompt = processor.apply_chat_template(to_conversation(user), add_generation_prompt=True, tokenize=False)
        full = processor(text=[prompt + BOX_ANSWER + "<|im_end|>"], images=[image], return_tensors="pt")
        n_prompt = processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"].shape[1]
        ids = full["input_ids"][0]
        labels = ids.clone()
        labels[:n_prompt] = -100
        encoded.append((ids, labels, full["mm_token_type_ids"][0], full["pixel_values"], full["image_grid_thw"]))
    model = load_model(tiny_dir).train()
    visual = model.model.visual
    with torch.no_grad():
        for merger in [visual.merger, *visual.deepstack_merger_list]:
            merger.linear_fc2.weight.zero_()
            merger.linear_fc2.bias.zero_()
    visual.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / steps)  # linear decay settles it
    pad = processor.tokenizer.pad_token_id
    width = max(len(e[0]) for e in encoded)
    ids = torch.full((len(encoded), width), pad)
    labels = torch.full((len(encoded), width), -100)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    types = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (i, lab, mm, _, _) in enumerate(encoded):  # right padding, as in training
        ids[row, :len(i)], labels[row, :len(i)], mask[row, :len(i)], types[row, :len(i)] = i, lab, 1, mm
    pixel_values = torch.cat([e[3] for e in encoded])
    grid_thw = torch.cat([e[4] for e in encoded])
    try:
        for _ in range(steps):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels, mm_token_type_ids=types,
                         pixel_values=pixel_values, image_grid_thw=grid_thw).loss
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.eval().save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


@contextmanager
def running_server(app, timeout: float = 30.0):
    """Serve `app` with uvicorn on 127.0.0.1 and a free port in a thread; yields the base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {port} within {timeout} s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
