"""`medmo data stats DIR`: what a record folder holds, as JSON, markdown and histograms.

    medmo data stats data/vqa_rad              # writes data/vqa_rad/stats/
    medmo data stats runs/mix_stage1 --out reports/stage1

Counts records by source, task, modality, body system and split (and source x split),
images per record, duplicate ids, and the target (answer) length in words, so a mixture's
composition can be set beside the paper's; probes image sizes from
file headers only (Pillow lazily, DICOM without pixel data, NIfTI headers), at most
`max_image_probes` distinct reads with a cache, so a 26M-record mixture is read in one
streaming pass. Writes stats.json, stats.md, image_sizes.png and answer_lengths.png.
Memory grows only with the number of distinct lengths/sizes and with the id set used
to find duplicates (8 bytes of hash per record).

Body system (`body_system`), one of BODY_SYSTEMS, decided by the first rule that applies:
1. a body part the source itself records (meta body_part, location_category, location,
   image_organ, organ: PubMedVision, MedPix, SLAKE, VQA-RAD), matched against KEYWORDS;
2. the source's own system when all its images show one (SOURCE_SYSTEM: MIMIC-CXR is
   chest, ISIC skin, Kvasir the GI tract, Quilt cells/pathology, ...);
3. the modality's when it implies one (MODALITY_SYSTEM: fundus -> eye, dermoscopy ->
   skin, endoscopy -> GI tract, pathology/microscopy -> cells/pathology);
4. KEYWORDS in the question and target text (the first user turn and assistant reply);
5. "other". KEYWORDS are tried in their table order, specific systems first (breast before
   chest, eye before brain/head), each a word prefix ("pulmon" matches pulmonary).
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from medmo.config import make_run_dir
from medmo.data.schema import resolve_image
from medmo.data.shards import iter_records, write_json

log = logging.getLogger(__name__)

BODY_SYSTEMS = ("chest", "abdomen", "brain/head", "musculoskeletal", "breast", "skin", "eye", "GI tract",
                "cells/pathology", "other")
KEYWORDS = {  # system -> word prefixes, tried in this order
    "breast": ("breast", "mammo", "axilla"),
    "eye": ("eye", "retina", "fundus", "macula", "optic disc", "ocular", "orbit", "glaucoma"),
    "skin": ("skin", "derm", "melanom", "nevus", "naevus", "cutaneous"),
    "GI tract": ("colon", "polyp", "stomach", "gastr", "esophag", "oesophag", "bowel", "rectum", "rectal", "duoden",
                 "gastrointestinal", "endoscop", "jejun", "ileum"),
    "cells/pathology": ("cell", "nuclei", "nucleus", "histo", "patholog", "h&e", "stain", "microscop", "cytolog",
                        "blood smear"),
    "brain/head": ("brain", "head", "skull", "cerebr", "cranial", "intracranial", "neuro", "neck", "sinus", "ventricle",
                   "temporal lobe", "frontal lobe"),
    "chest": ("chest", "thora", "lung", "pulmon", "pleura", "cardi", "heart", "pneumo", "mediastin", "rib", "aort"),
    "musculoskeletal": ("bone", "fractur", "spine", "spinal", "vertebr", "knee", "joint", "hip", "shoulder", "muscle",
                        "musculoskeletal", "femur", "tibia", "wrist", "ankle", "elbow", "hand", "foot"),
    "abdomen": ("abdom", "liver", "hepat", "kidney", "renal", "pancrea", "spleen", "bladder", "pelvi", "adrenal",
                "gallbladder", "uter", "ovar", "prostat"),
}
SOURCE_SYSTEM = {
    "mimic_cxr": "chest", "chexpert_plus": "chest", "iu_xray": "chest", "nih_chestxray14": "chest",
    "mimic_ext_vqa": "chest", "mimic_diff_vqa": "chest", "vindr_cxr": "chest", "rsna_pneumonia": "chest",
    "tbx11k": "chest", "chestx_det": "chest", "siim_acr": "chest",
    "isic": "skin", "kvasir_seg": "GI tract", "cvc_clinicdb": "GI tract", "busi": "breast",
    "quilt_1m": "cells/pathology", "quilt_llava": "cells/pathology", "path_vqa": "cells/pathology",
    "bccd": "cells/pathology", "monuseg": "cells/pathology", "dsb2018": "cells/pathology",
    "darkfield_bacteria": "cells/pathology", "kits19": "abdomen", "msd_liver": "abdomen",
}
MODALITY_SYSTEM = {"fundus": "eye", "dermoscopy": "skin", "endoscopy": "GI tract", "pathology": "cells/pathology",
                   "microscopy": "cells/pathology"}
_META_PART = ("body_part", "location_category", "location", "image_organ", "organ")
_PATTERNS = {system: re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + ")", re.I)
             for system, words in KEYWORDS.items()}


def _by_keywords(text: str) -> str | None:
    return next((system for system, pattern in _PATTERNS.items() if pattern.search(text)), None)


def body_system(d: dict) -> str:
    """The body system of a record (dict), by the rules of the module docstring."""
    meta = d.get("meta") or {}
    part = re.sub(r"\bABD\b", "abdomen", " ".join(str(meta[k]) for k in _META_PART if meta.get(k)))  # VQA-RAD's organ code
    if part and (system := _by_keywords(part)):
        return system
    if system := SOURCE_SYSTEM.get(str(d.get("source"))) or MODALITY_SYSTEM.get(str(d.get("modality"))):
        return system
    messages = d.get("messages") or []
    text = " ".join(next((m["content"] for m in messages if m.get("role") == role), "") for role in ("user", "assistant"))
    return _by_keywords(text) or "other"


@dataclass
class StatsConfig:
    dir: str = field(metadata={"help": "folder of record shards (.jsonl / .parquet), or one such file"})
    out: str | None = field(default=None, metadata={
        "help": "where to write stats.json/.md and PNGs (default: DIR/stats)"})
    max_image_probes: int = field(default=200_000, metadata={
        "help": "image headers read at most (sizes of the rest are not sampled)"})


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header, or None if unreadable."""
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            shape = nib.load(str(path)).shape
            return int(shape[0]), int(shape[1])
        if name.endswith((".dcm", ".dicom")):
            from medmo.imaging.dicom import header_size

            return header_size(path)
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:  # any unreadable header just counts as unreadable
        return None


def collect(folder: str | Path, max_image_probes: int = 200_000) -> dict:
    counts = {k: Counter() for k in ("source", "task", "modality", "body_system", "split", "source_split",
                                     "images_per_record")}
    answer_words: Counter = Counter()
    sizes: Counter = Counter()
    image_status: Counter = Counter()
    ids: set[bytes] = set()
    duplicates = 0
    cache: OrderedDict[str, tuple[int, int] | None] = OrderedDict()
    probes = 0
    n = 0
    for d, base in tqdm(iter_records(folder), desc="stats", unit="rec", mininterval=2):
        n += 1
        for key in ("source", "task", "modality", "split"):
            counts[key][str(d.get(key))] += 1
        counts["source_split"][f"{d.get('source')}/{d.get('split')}"] += 1
        counts["body_system"][body_system(d)] += 1
        images = d.get("images") or []
        counts["images_per_record"][str(len(images))] += 1
        h = hashlib.blake2b(str(d.get("id")).encode(), digest_size=8).digest()
        duplicates += h in ids
        ids.add(h)
        target = next((m["content"] for m in d.get("messages", []) if m.get("role") == "assistant"), None)
        if target is not None:
            answer_words[len(target.split())] += 1
        for p in images:
            key = str(resolve_image(p, base))
            if key in cache:
                cache.move_to_end(key)
                size = cache[key]
            elif probes < max_image_probes:
                probes += 1
                size = cache[key] = image_size(Path(key))
                if len(cache) > 65536:
                    cache.popitem(last=False)
            else:
                image_status["not_probed"] += 1
                continue
            image_status["ok" if size else "missing_or_unreadable"] += 1
            if size:
                sizes[size] += 1
    over = {f"{side}x{side}": sum(c for (w, h), c in sizes.items() if w * h > side * side) for side in (768, 1280)}
    return {"records": n, "duplicate_ids": duplicates, "images_over_budget": over, **{f"by_{k}": dict(sorted(v.items())) for k, v in counts.items()},
            "images": dict(image_status), "answer_words": {str(k): v for k, v in sorted(answer_words.items())},
            "image_sizes": {f"{w}x{h}": c for (w, h), c in sorted(sizes.items())}}


def run(cfg: StatsConfig) -> Path:
    src = Path(cfg.dir)
    out = make_run_dir(cfg.out or (src / "stats" if src.is_dir() else src.with_name(src.stem + "_stats")), cfg)
    stats = collect(cfg.dir, cfg.max_image_probes)
    write_json(out / "stats.json", stats)
    (out / "stats.md").write_text(to_markdown(stats, cfg.dir), encoding="utf-8")
    _plots(stats, out)
    log.info("%d records -> %s", stats["records"], out)
    return out


def to_markdown(stats: dict, name: str) -> str:
    lines = [f"# Data statistics: {name}", "", f"- records: {stats['records']}",
             f"- duplicate ids: {stats['duplicate_ids']}",
             "- image references: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["images"].items())),
             "- images larger than a stage budget (downscaled by the processor): "
             + ", ".join(f"{k} {v}" for k, v in stats["images_over_budget"].items()), ""]
    for key in ("source", "task", "modality", "body_system", "split", "source_split", "images_per_record"):
        table = stats[f"by_{key}"]
        lines += [f"## by {key.replace('_', ' ')}", "", f"| {key} | records | share |", "|---|---:|---:|"]
        lines += [f"| {k} | {v} | {v / max(stats['records'], 1):.1%} |"
                  for k, v in sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))]
        lines.append("")
    hist = {int(k): v for k, v in stats["answer_words"].items()}
    if hist:
        lines += ["## answer length (words)", "", f"median {hist_quantile(hist, 0.5)}, "
                  f"95th percentile {hist_quantile(hist, 0.95)}, max {max(hist)}", ""]
    return "\n".join(lines)


def hist_quantile(hist: dict[int, int], q: float) -> int:
    """The q-quantile of the values a {value: count} histogram describes."""
    total, seen = sum(hist.values()), 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= q * total:
            return value
    return max(hist)


def _plots(stats: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hax, ax) = plt.subplots(1, 2, figsize=(11, 4))
    sizes = [(tuple(map(int, k.split("x"))), c) for k, c in stats["image_sizes"].items()]
    if sizes:
        ws, hs, cs = zip(*[(w, h, c) for (w, h), c in sizes])
        hax.hist([w * h / 1e6 for w, h in zip(ws, hs)], weights=cs, bins=40)
        for budget, name in ((768 * 768, "stage 1: 768²"), (1280 * 1280, "stage 2: 1280²")):
            hax.axvline(budget / 1e6, color="red", linestyle="--", linewidth=1)
            hax.text(budget / 1e6, hax.get_ylim()[1] * 0.95, f" {name}", color="red", fontsize=8, va="top")
        sc = ax.scatter(ws, hs, s=[8 + 40 * c / max(cs) for c in cs], c=cs, cmap="viridis")
        fig.colorbar(sc, ax=ax, label="image references")
    hax.set(xlabel="megapixels (width x height)", ylabel="image references", title="image size vs stage budgets")
    ax.set(xlabel="width (px)", ylabel="height (px)", title="image sizes")
    fig.tight_layout()
    fig.savefig(out / "image_sizes.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    hist = {int(k): v for k, v in stats["answer_words"].items()}
    if hist:
        ax.bar(list(hist), list(hist.values()), width=1.0)
    ax.set(xlabel="answer length (words)", ylabel="records", title="answer lengths")
    fig.tight_layout()
    fig.savefig(out / "answer_lengths.png", dpi=100)
    plt.close(fig)
