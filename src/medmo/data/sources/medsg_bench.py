"""MedSG-Bench (medical image-sequence grounding) -> grounding records; and its published
reference outputs -> a medmo predictions file.

Release: https://huggingface.co/MedSG-Bench (the benchmark, 9,630 test items, and the
MedSG-188K training set). Licence: CC-BY-4.0 data.
No credentials. Images are 336x336 PNGs, except multi_view, whose items carry `size`.

Point `raw` at a JSON file or a folder of them (searched recursively). Two formats:

    test  (benchmark): [{"task", "images": [paths], "question", "answer": [x1, y1, x2, y2],
                         "size": [w, h] (multi_view only)}]       -> split "test"
    train (MedSG-188K, LLaMA-Factory sharegpt): [{"id", "task", "images", "conversations":
          [{"from": "human"|"gpt", "value"}]}], answers like "It's in the third image.
          <|box_start|>(x1,y1),(x2,y2)<|box_end|>"                -> split "train",
          one record per question turn (turns are independent questions on the same images)

Tasks: Registered_Diff, Non_Registered_Diff, multi_view, object_tracking, concept, patch,
crossmodal, referring. Boxes are pixels of the 336x336 image (or `size`); this is how the
official evaluation reads them too (it hard-codes 336x336 except for multi_view).

Prompts are rendered for grid models (Qwen3-VL, MedMO): one `<image>` per image (in
place when the question interleaves them, else in front), box hints in the question
(`<|box_start|>(x1,y1),(x2,y2)<|box_end|>`, pixels) rewritten to MedMO's
`<box>[[x1, y1, x2, y2]]</box>` on the 0-1000 grid, `<|object_ref_*|>` markers removed,
and MEDSG_SUFFIX in place of the official Qwen2-VL format line. The original
question stays in meta["question"]. Image paths in the release are absolute paths of the
authors' machine; a path that does not exist is looked up by its tail under the JSON's
folder; one not found there either is named beside the JSON file (so it stays inside
the release: `--check-images exists` counts it missing, and medmo data convert does not
refuse it as a path outside the release).

`reference_predictions(file)` turns the official evaluation's output file (a list of
{"task", "question", "answer" = raw model text, "filter_answer", "iou", "groundtruth"}
with a final aggregate dict) into unified records plus "response", for `medmo score
--box-format pixels`; `reference_aggregate(file)` reads that final dict as fractions.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from medmo.boxes import Box
from medmo.data.schema import IMAGE_TOKEN, Record
from medmo.data.sources import Drops, check_utf8, register_source, require_path
from medmo.data.sources._grounding import check_box, grounding_record
from medmo.data.sources._qa import read_text
from medmo.model.prompts import MEDSG_SUFFIX

TASKS = ("Registered_Diff", "Non_Registered_Diff", "multi_view", "object_tracking", "concept", "patch",
         "crossmodal", "referring")
DEFAULT_SIZE = (336, 336)
_BOX = re.compile(r"<\|box_start\|>\s*\(\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*\)\s*,\s*"
                  r"\(\s*(\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*\)\s*<\|box_(?:end|start)\|>")
_REF = re.compile(r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|>", re.S)
_FORMAT_LINE = re.compile(r"\s*Format:.*$", re.S)  # the official eval appends its format line
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def grid_question(question: str, width: float, height: float, n_images: int) -> str:
    """The question for a grid model: pixel box hints -> MedMO grid syntax, no ref markers.

    `<image>` placeholders stay where the question puts them when there is one per image;
    otherwise they are removed and grounding_record puts one per image in front.
    """
    def to_grid(m: re.Match) -> str:
        g = Box.from_list([float(v) for v in m.groups()]).to_grid(width, height)
        return "<box>[[" + ", ".join(str(int(v)) for v in g.as_list()) + "]]</box>"

    if question.count(IMAGE_TOKEN) != n_images:
        question = question.replace(IMAGE_TOKEN, "")
    text = _FORMAT_LINE.sub("", question).strip()
    return _REF.sub(r"\1", _BOX.sub(to_grid, text)) + MEDSG_SUFFIX


def _resolve(path: str, base: Path) -> str:
    p = Path(path)
    if p.exists():
        return str(p)
    for k in range(1, len(p.parts)):
        cand = base.joinpath(*p.parts[k:])
        if cand.exists():
            return str(cand)
    return str(base / p.name)


def _size(item: dict) -> tuple[int, int]:
    size = item.get("size")
    return (int(size[0]), int(size[1])) if item.get("task") == "multi_view" and size else DEFAULT_SIZE


def _test_records(item: dict, i: int, base: Path, stem: str, drops: Drops) -> Iterator[Record]:
    where = f"{stem}[{i}]"
    width, height = _size(item)
    ref = _REF.search(item["question"])
    box = check_box(item.get("answer") or [], width, height, drops, where, ref.group(1).strip() if ref else None)
    if box is None:
        return
    images = [_resolve(p, base) for p in item.get("images", [])]
    yield grounding_record(
        rid=f"medsg_bench/test/{item['task']}/{stem}/{i}", source="medsg_bench", split="test",
        modality="mixed", images=images, prompt=grid_question(item["question"], width, height, len(images)), boxes=[box],
        image_size=(width, height), meta={"task": item["task"], "question": item["question"]},
    )


def _train_records(item: dict, i: int, base: Path, stem: str, drops: Drops) -> Iterator[Record]:
    width, height = _size(item)
    images = [_resolve(p, base) for p in item.get("images", [])]
    turns = item["conversations"]
    item_id = item.get("id") or f"{item['task']}/{stem}/{i}"
    for t in range(0, len(turns) - 1, 2):
        where = f"{stem}[{i}] turn {t // 2}"
        question, answer = turns[t]["value"], turns[t + 1]["value"]
        m = _BOX.search(answer)
        if turns[t]["from"] != "human" or turns[t + 1]["from"] != "gpt" or m is None:
            drops.add("turn_without_box", where)
            continue
        ref = _REF.search(question)
        box = check_box(m.groups(), width, height, drops, where, ref.group(1).strip() if ref else None)
        if box is None:
            continue
        prefix = answer[: m.start()].strip()
        index = next((k for k, w in enumerate(_ORDINALS) if f"{w} image" in prefix), None)
        yield grounding_record(
            rid=f"medsg_bench/train/{item_id}/{t // 2}", source="medsg_bench",
            split="train", modality="mixed", images=images, prompt=grid_question(question, width, height, len(images)),
            boxes=[box], image_size=(width, height), target_prefix=prefix,
            meta={"task": item["task"], "question": question, "image_index": index},
        )


@register_source("medsg_bench", tasks=("grounding",), modality="mixed", licence="CC BY 4.0",
                 url="https://huggingface.co/MedSG-Bench", splits={"test": 9_630})
def convert(raw: str | Path, drops: Drops, split: str | None = None, tasks: tuple[str, ...] | None = None
            ) -> Iterator[Record]:
    """Records of every item in `raw`; `tasks` keeps only those MedSG tasks."""
    raw = require_path(raw, "a MedSG-Bench JSON file or a folder of them")
    files = sorted(raw.rglob("*.json")) if raw.is_dir() else [raw]
    if not files:
        raise FileNotFoundError(f"{raw}: no .json files; expected MedSG-Bench task files")
    for path in files:
        try:
            items = json.loads(read_text(path))
        except (ValueError, UnicodeDecodeError) as e:
            drops.add("unreadable_file", f"{path}: {e}")
            continue
        if not isinstance(items, list):
            drops.add("unreadable_file", f"{path}: not a JSON list of items")
            continue
        if items and isinstance(items[0], dict) and "groundtruth" in items[0]:
            drops.add("evaluation_output_file", f"{path.name}: model outputs, read with reference_predictions()")
            continue
        for i, item in enumerate(items):
            with drops.guard(f"{path.name}[{i}]"):
                check_utf8(item)
                if not isinstance(item, dict) or item.get("task") not in TASKS:
                    drops.add("unknown_task", f"{path.name}[{i}]: {str(item)[:80]}")
                    continue
                if tasks is not None and item["task"] not in tasks:
                    continue
                if "conversations" in item:
                    make, item_split = _train_records, "train"
                elif "question" in item:
                    make, item_split = _test_records, "test"
                else:
                    drops.add("malformed_item", f"{path.name}[{i}]: neither 'question' nor 'conversations'")
                    continue
                if split is None or split == item_split:
                    yield from make(item, i, path.parent, path.stem, drops)


def reference_predictions(path: str | Path) -> list[dict[str, Any]]:
    """The official evaluation's output file -> unified records + "response" (raw text).

    Records keep the question the model saw (pixels of 336x336, images not listed: the file
    has none) and the file's own parse and IoU in meta["reference"] for comparison.
    """
    path = require_path(path, "a MedSG-Bench evaluation output JSON (list of items + aggregate dict)")
    data = json.loads(path.read_text(encoding="utf-8"))
    items = data[:-1] if data and isinstance(data[-1], dict) and "groundtruth" not in data[-1] else data
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "groundtruth" not in item:
            raise ValueError(f"{path}: item {i} has no 'groundtruth'; expected MedSG-Bench evaluation output")
        width, height = _size(item)
        rec = Record(
            id=f"medsg_bench/test/{item['task']}/{i}", source="medsg_bench", split="test", task="grounding",
            modality="mixed", messages=[{"role": "user", "content": item["question"]}],
            answer={"boxes": [{"bbox": [float(v) for v in item["groundtruth"]]}], "image_size": [width, height]},
            meta={"task": item["task"], "reference": {"parsed": item.get("filter_answer"), "iou": item.get("iou")}},
        )
        out.append({**rec.to_dict(), "response": item.get("answer") or ""})
    return out


def reference_aggregate(path: str | Path) -> dict[str, Any]:
    """The file's final aggregate dict, per task, as medmo's fractions.

    MedSG-Bench stores counts and a SUM of IoU ('AVE_IOU' is not an average); thresholds
    are inclusive (IoU >= t).
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not (data and isinstance(data[-1], dict) and all(isinstance(v, dict) and "TOTAL" in v for v in data[-1].values())):
        raise ValueError(f"{path}: the last element is not MedSG-Bench's aggregate {{task: {{'AVE_IOU', 'TOTAL', ...}}}}")
    out = {}
    for task, agg in data[-1].items():
        n = agg["TOTAL"]
        out[task] = {"n": n, "mean_iou": agg["AVE_IOU"] / n, "iou@0.3": agg["IOU@0.3"] / n,
                     "iou@0.5": agg["IOU@0.5"] / n, "iou@0.7": agg["IOU@0.7"] / n}
    return out
