"""`medmo data mix`: allocation, repeats and subsampling, determinism, streaming shuffle, budgets."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
import yaml
from PIL import Image

from data_helpers import vqa, write_folder
from medmo.cli import main
from medmo.config import load_config
from medmo.data.mixture import MixtureConfig, allocate, buffer_shuffle, count_records, run
from medmo.data.shards import iter_records

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("counts,weights,total,expected", [
    ([10, 3], [1, 1], 20, [10, 10]),          # proportions of total, however large each source is
    ([10, 3], [3, 1], 10, [8, 2]),            # 7.5/2.5: the tie goes to the first source
    ([5, 5, 5], [1, 1, 1], 10, [4, 3, 3]),    # largest remainder keeps the sum exact
    ([10, 3], [0.5, 2], None, [5, 6]),        # no total: weights are repeat factors
    ([10, 3], [0, 1], 4, [0, 4]),             # a zero weight takes nothing
])
def test_allocate(counts, weights, total, expected):
    assert allocate(counts, weights, total) == expected


@pytest.fixture
def sources(tmp_path):
    a = write_folder(tmp_path / "a", [vqa(f"a/{i}", f"qa{i}", "yes", [], source="a") for i in range(10)], shard_size=4)
    b = write_folder(tmp_path / "b", [vqa(f"b/{i}", f"qb{i}", "no", [], source="b") for i in range(3)],
                     fmt="parquet")
    return [{"name": "a", "path": str(a), "weight": 1.0}, {"name": "b", "path": str(b), "weight": 1.0}]


def _mix(tmp_path, sources, out="mix", **kw):
    return run(MixtureConfig(out=str(tmp_path / out), sources=sources, shuffle_buffer=kw.pop("shuffle_buffer", 4),
                             shard_size=kw.pop("shard_size", 7), **kw))


def test_repeats_small_sources_and_keeps_ids_unique(tmp_path, sources):
    out = _mix(tmp_path, sources, total=20)
    recs = [d for d, _ in iter_records(out)]
    assert Counter(d["source"] for d in recs) == {"a": 10, "b": 10}
    assert len({d["id"] for d in recs}) == 20
    assert sum(d["id"].endswith("#r3") for d in recs) == 1  # b: 3 full passes and 1 extra record
    report = json.loads((out / "mixture.json").read_text())
    assert [s["selected"] for s in report["sources"]] == [10, 10] and report["total"] == 20
    assert all(d["meta"]["max_pixels"] == 768 * 768 and d["meta"]["mixture"] == "mix" for d in recs)


def test_subsampling_without_replacement(tmp_path, sources):
    sources[0]["weight"], sources[1]["weight"] = 0.5, 0.0
    recs = [d for d, _ in iter_records(_mix(tmp_path, sources))]
    assert len(recs) == 5 and len({d["id"] for d in recs}) == 5 and {d["source"] for d in recs} == {"a"}


def test_deterministic_and_seeded(tmp_path, sources):
    def shard_bytes(out):
        return [p.read_bytes() for p in sorted(out.glob("mix-*.jsonl"))]

    first = shard_bytes(_mix(tmp_path, sources, total=13))
    assert shard_bytes(_mix(tmp_path, sources, total=13)) == first          # same recipe, same bytes
    assert shard_bytes(_mix(tmp_path, sources, out="m2", total=13)) == first  # output folder does not matter
    other = shard_bytes(_mix(tmp_path, sources, out="m3", total=13, seed=1))
    assert other != first


def test_output_is_shuffled_across_sources(tmp_path, sources):
    ids = [d["id"] for d, _ in iter_records(_mix(tmp_path, sources, total=13, shuffle_buffer=100))]
    assert ids != sorted(ids)
    assert {i.split("/")[0] for i in ids[:6]} == {"a", "b"}  # sources are interleaved, not concatenated


def test_buffer_shuffle_holds_at_most_the_buffer():
    produced = 0
    held = []

    def source():
        nonlocal produced
        for i in range(1000):
            produced += 1
            yield i

    out = []
    for x in buffer_shuffle(source(), 16, random.Random(0)):
        held.append(produced - len(out))
        out.append(x)
    assert sorted(out) == list(range(1000)) and out != list(range(1000))
    assert max(held) <= 17  # the buffer plus the record being swapped in: memory independent of 1000


def test_resize_images_rescales_boxes(tmp_path):
    img = tmp_path / "wide.png"
    Image.new("RGB", (2048, 1024), (40, 40, 40)).save(img)
    rec = vqa("g/0", "Find the lesion.", "lesion", ["wide.png"], source="g")
    rec.update(task="grounding", answer={"boxes": [{"bbox": [100, 200, 300, 400], "label": "lesion"}],
                                         "image_size": [2048, 1024]})
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "wide.png").write_bytes(img.read_bytes())  # relative to its record folder
    write_folder(tmp_path / "g", [rec])
    out = _mix(tmp_path, [{"name": "g", "path": str(tmp_path / "g")}], resize_images=True)
    (d, _), = list(iter_records(out))
    with Image.open(d["images"][0]) as im:
        assert im.size == (1056, 512) and im.width * im.height <= 768 * 768
    assert d["answer"]["image_size"] == [1056, 512]
    s = 1056 / 2048
    assert d["answer"]["boxes"][0]["bbox"] == pytest.approx([100 * s, 200 * 0.5, 300 * s, 400 * 0.5], abs=0.01)


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="sources\\[0\\] must be a mapping with keys"):
        MixtureConfig(out="x", sources=[{"name": "a", "path": "p", "weigth": 2}])
    with pytest.raises(ValueError, match="at least one source"):
        MixtureConfig(out="x")
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        run(MixtureConfig(out=str(tmp_path / "o"), sources=[{"name": "a", "path": str(tmp_path / "nowhere")}]))


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes" / "data").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_load(recipe):
    cfg = load_config(MixtureConfig, recipe)
    assert cfg.sources and cfg.max_pixels in (768 * 768, 1280 * 1280)
    assert recipe.read_text().startswith("#")  # a header saying how to launch it


def test_cli_with_overrides(tmp_path, sources):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"out": str(tmp_path / "o"), "sources": sources, "max_pixels": 1280 * 1280}))
    assert main(["data", "mix", str(recipe), "total=7", "format=parquet"]) == 0
    assert count_records(tmp_path / "o") == 7
    assert main(["data", "mix", str(recipe), "totl=7"]) == 2


def test_resize_counts_undecodable_and_missing_images(tmp_path):
    (tmp_path / "g").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "g" / "ok.png")
    (tmp_path / "g" / "junk.png").write_bytes(b"\x1f\x8b\x08\x00" + b"junk" * 64)  # gzip magic, not gzip
    recs = [vqa(f"g/{i}", "What is shown?", "x", [name], source="g")
            for i, name in enumerate(["ok.png", "junk.png", "gone.png"])]
    write_folder(tmp_path / "g", recs)
    out = _mix(tmp_path, [{"name": "g", "path": str(tmp_path / "g")}], resize_images=True)
    report = json.loads((out / "mixture.json").read_text())
    assert report["total"] == 1
    assert report["dropped"]["by_reason"] == {"image_unreadable": 1, "image_missing": 1}
