"""The `medmo` command (this file only parses arguments and dispatches).

MedMO for medical images on Qwen3-VL: convert datasets, train the four stages,
evaluate on medical benchmarks, and answer, report and ground on real images.
Everything runs on CPU with the tiny model; no network is needed.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

EPILOG = """examples:
  medmo demo                                  the whole pipeline on CPU (runs/demo/)
  medmo tiny --out runs/tiny                  build the tiny Qwen3-VL checkpoint offline
  medmo train recipes/tiny/pipeline.yaml      train stages 1-4 (key=value overrides)
  medmo data convert vqa_rad --raw PATH --out data/vqa_rad
  medmo eval --model DIR --suite vqa --data ../shared/data --out runs/eval
  medmo score --predictions FILE.jsonl --box-format pixels --out runs/score
  medmo infer --model DIR --image ct.dcm --task ground --target nodule --draw out.png
  medmo serve --model DIR                     API + web page at http://127.0.0.1:8000/

Run `medmo COMMAND --help` for each command's options."""


def _cmd_tiny(args) -> int:
    from medmo.model.tiny import build_tiny

    print(build_tiny(args.out, arch=args.arch))
    return 0


def _cmd_demo(args) -> int:
    from medmo.config import load_config
    from medmo.demo import DemoConfig, run

    run(load_config(DemoConfig, None, (), out=args.out, minutes=args.minutes, threads=args.threads))
    return 0


def _cmd_train(args) -> int:
    from medmo.train import prepare_recipe, run_recipe

    if args.prepare:
        print(json.dumps(prepare_recipe(args.recipe, args.overrides), indent=2))
        return 0
    if args.rehearse:
        from medmo.config import load_config
        from medmo.rehearse import RehearseConfig, run

        if not args.data_root:
            raise ValueError("--rehearse needs --data-root DIR: the raw releases, one folder per source")
        print(run(load_config(RehearseConfig, None, args.overrides, recipe=args.recipe, data_root=args.data_root,
                              out=args.out)))
        return 0
    if args.data_root or args.out:
        raise ValueError("--data-root and --out go with --rehearse; a training run's folder is the recipe's output_dir")
    print(run_recipe(args.recipe, args.overrides))
    return 0


def _cmd_export(args) -> int:
    from medmo.config import load_config
    from medmo.train.export import ExportConfig, run

    print(run(load_config(ExportConfig, None, (), run_dir=args.run_dir, out=args.out, checkpoint=args.checkpoint,
                          dtype=args.dtype, name=args.name)))
    return 0


def _cmd_data_convert(args) -> int:
    from medmo.config import load_config
    from medmo.data.convert import ConvertConfig, run

    cfg = load_config(ConvertConfig, None, (), source=args.source, raw=args.raw, out=args.out, format=args.format,
                      shard_size=args.shard_size, split=args.split, check_images=args.check_images,
                      image_dir=args.image_dir, allow_outside_images=args.allow_outside_images)
    print(run(cfg))
    return 0


def _cmd_data_sources(args) -> int:
    from medmo.data.catalogue import catalogue

    print(catalogue())
    return 0


def _cmd_data_stats(args) -> int:
    from medmo.config import load_config
    from medmo.data.stats import StatsConfig, run

    print(run(load_config(StatsConfig, None, (), dir=args.dir, out=args.out)))
    return 0


def _cmd_data_mix(args) -> int:
    from medmo.config import load_config
    from medmo.data.mixture import MixtureConfig, run

    print(run(load_config(MixtureConfig, args.recipe, args.overrides)))
    return 0


def _cmd_data_overlap(args) -> int:
    from medmo.config import load_config
    from medmo.data.overlap import OverlapConfig, run

    cfg = load_config(OverlapConfig, None, (), train=args.train, bench=args.bench, out=args.out, drop=args.drop,
                      image_distance=args.image_distance, text_similarity=args.text_similarity,
                      drop_on=args.drop_on.split(","))
    print(run(cfg))
    return 0


def _cmd_data_cell(args) -> int:
    from medmo.config import load_config
    from medmo.data.cell import CellConfig, run

    cfg = load_config(CellConfig, args.recipe, args.overrides, masks=args.masks, out=args.out, tile=args.tile,
                      min_area=args.min_area)
    print(run(cfg))
    return 0


def _cmd_data_retrieval(args) -> int:
    from medmo.config import load_config
    from medmo.data.retrieval import RetrievalConfig, build

    print(build(load_config(RetrievalConfig, None, args.overrides, src=args.src, out=args.out, choices=args.choices,
                            seed=args.seed)))
    return 0


def _cmd_data_medsg_predictions(args) -> int:
    from medmo.data.schema import write_jsonl
    from medmo.data.sources.medsg_bench import reference_aggregate, reference_predictions

    n = write_jsonl(reference_predictions(args.file), args.out)
    print(f"{args.out}: {n} predictions; published aggregate: {reference_aggregate(args.file)}")
    return 0


def _cmd_infer(args) -> int:
    from medmo.config import load_config
    from medmo.infer import InferConfig, format_result, infer

    cfg = load_config(InferConfig, None, (), model=args.model, image=args.image, prompt=args.prompt, task=args.task,
                      target=args.target, window=args.window, slice_index=args.slice, frame=args.frame,
                      draw=args.draw, max_new_tokens=args.max_new_tokens, max_pixels=args.max_pixels,
                      dtype=args.dtype, device=args.device, **_budgets(args))
    print(format_result(infer(cfg), as_json=args.json))
    return 0


_BUDGETS = (  # decoding budgets shared by infer and serve (medmo.imaging.limits), checked on headers
    ("max_image_pixels", 40_000_000, "pixels of one decoded image (frame, slice, montage)"),
    ("max_request_pixels", 80_000_000, "pixels of all images of one request together"),
    ("max_volume_voxels", 134_217_728, "voxels of a NIfTI volume, multi-frame DICOM or DICOM series"),
    ("max_decompressed_bytes", 335_544_320, "bytes a .nii.gz or deflated DICOM may inflate to"),
)


def _add_budget_flags(p, over: str) -> None:
    for name, default, what in _BUDGETS:
        p.add_argument("--" + name.replace("_", "-"), type=int, default=default, help=f"{what}; more {over}")


def _budgets(args) -> dict:
    return {name: getattr(args, name) for name, _, _ in _BUDGETS}


def _cmd_serve(args) -> int:
    from medmo.config import load_config
    from medmo.serve.api import ServeConfig, run

    cfg = load_config(ServeConfig, None, (), model=args.model, host=args.host, port=args.port,
                      max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                      max_new_tokens=args.max_new_tokens, max_body_mb=args.max_body_mb,
                      max_pixels=args.max_pixels, dtype=args.dtype, **_budgets(args),
                      device=args.device, api_key=args.api_key, api_key_file=args.api_key_file,
                      max_prompt_tokens=args.max_prompt_tokens, max_request_tokens=args.max_request_tokens,
                      header_timeout_s=args.header_timeout_s, body_timeout_s=args.body_timeout_s,
                      max_connections=args.max_connections)
    run(cfg)
    return 0


_EVAL_FIELDS = ("model", "backend", "records", "data", "limit", "shard", "out", "batch_size", "max_new_tokens",
                "protocol", "mode", "box_format", "grounding_protocol", "dtype", "device", "min_pixels", "max_pixels",
                "base_url", "concurrency")


def _cmd_eval(args) -> int:
    from medmo.config import load_config
    from medmo.eval.offline import merge
    from medmo.eval.runner import EvalConfig, run, suite_path

    if args.eval_command == "merge":
        print(merge(args.dirs, args.out or f"{args.dirs[0].rstrip('/')}/../merged", plots=not args.no_plots))
        return 0
    if args.list:
        from medmo.eval.benchmarks import catalogue

        print("\n".join(catalogue()))
        return 0
    given = {k: getattr(args, k) for k in _EVAL_FIELDS if getattr(args, k) is not None}
    if args.benchmark:
        given["benchmarks"] = [b for item in args.benchmark for b in item.split(",") if b]
    if args.no_plots:
        given["plots"] = False
    if args.skip_missing:
        given["skip_missing"] = True
    overrides = list(args.set or [])
    overrides += [f"judge.{k}={v}" for k, v in (("model", args.judge_model), ("base_url", args.judge_base_url))
                  if v is not None]
    recipe = suite_path(args.suite) if args.suite else None
    print(run(load_config(EvalConfig, recipe, overrides, **given)))
    return 0


def _cmd_score(args) -> int:
    from medmo.eval.judge import JudgeConfig
    from medmo.eval.offline import score_predictions

    judge = JudgeConfig(model=args.judge_model, base_url=args.judge_base_url)
    print(score_predictions(args.predictions, args.out, box_format=args.box_format, mode=args.mode,
                            grounding_protocol=args.grounding_protocol, benchmark=args.benchmark, judge=judge,
                            plots=not args.no_plots))
    return 0


def version() -> str:
    """"medmo 0.1.0", plus the git sha when run from a checkout (what run folders record too)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    from medmo import __version__
    from medmo.config import git_sha

    try:
        number = dist_version("medmo")
    except PackageNotFoundError:  # run from a source tree that was never installed
        number = __version__
    sha = git_sha()
    return f"medmo {number}" + (f" (git {sha})" if sha else "")


class _Version(argparse.Action):
    """--version, computed only when asked (git is not run for every command)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version (and git sha in a checkout) and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    from medmo.model.families import check_box_format

    parser = argparse.ArgumentParser(prog="medmo", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("tiny", help="build a tiny checkpoint offline (Qwen3-VL, or another family with --arch)")
    p.add_argument("--out", required=True, help="folder to write the checkpoint to")
    p.add_argument("--arch", default="qwen3_vl",
                   help="family: qwen3_vl (default), qwen3_vl_moe, qwen2_5_vl, internvl, gemma3, llava_onevision")
    p.set_defaults(func=_cmd_tiny)

    p = sub.add_parser("demo", help="the whole pipeline on CPU with the tiny model: train 4 stages, evaluate each")
    p.add_argument("--minutes", type=float, default=10.0, help="budget on two CPU cores; scales every stage's steps")
    p.add_argument("--out", default="runs/demo", help="run folder (re-running resumes it)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: min(2, cores))")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="run a training recipe: an SFT stage, a GRPO stage or a pipeline")
    p.add_argument("recipe", help="recipe YAML with a `trainer:` key, e.g. recipes/tiny/stage1_sft.yaml")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. max_steps=10 lora.enabled=true")
    p.add_argument("--prepare", action="store_true",
                   help="only build the training sets and packing plans in the run folders (no model, no GPU) "
                        "and print their sizes, skips and packing fill; training then reuses them")
    p.add_argument("--rehearse", action="store_true",
                   help="run the recipe as shipped on the tiny model on CPU, a few steps per stage, on the raw "
                        "releases under --data-root (converted, mixed, trained, exported, evaluated); key=value "
                        "overrides then set RehearseConfig fields (steps, samples, eval_limit, ...)")
    p.add_argument("--data-root", dest="data_root", default=None,
                   help="--rehearse: raw releases, one folder per source (e.g. ../shared/data)")
    p.add_argument("--out", default=None, help="--rehearse: run folder (default runs/rehearse/<recipe name>)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("export", help="a training run -> a Hugging Face checkpoint (LoRA merged) with a model card")
    p.add_argument("run_dir", help="a stage's run folder, or a pipeline/demo folder of stages (e.g. runs/medmo-4b)")
    p.add_argument("--out", required=True, help="folder for the checkpoint, processor and README.md")
    p.add_argument("--checkpoint", default=None,
                   help="export a checkpoint of the last stage instead of its final model: 'last' or 'checkpoint-N'")
    p.add_argument("--dtype", default="auto", help="weights dtype: auto (as trained), float32, bfloat16, float16")
    p.add_argument("--name", default=None, help="model name in the card (default: the --out folder name)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("data", help="convert, inspect, mix and check datasets (see `medmo data -h`)")
    p.set_defaults(func=lambda _a, _p=p: _p.print_help())
    data_sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")

    d = data_sub.add_parser("convert", help="a public dataset release -> sharded unified records + report.json")
    d.add_argument("source", help="registered source name, e.g. vqa_rad (an unknown name lists them all)")
    d.add_argument("--raw", required=True, help="the release as downloaded (folder or main file; see the source's doc)")
    d.add_argument("--out", required=True, help="output folder for shards and report.json")
    d.add_argument("--format", default="jsonl", choices=("jsonl", "parquet"), help="shard format")
    d.add_argument("--shard-size", type=int, default=50_000, help="records per shard")
    d.add_argument("--split", default=None, help="only this split (default: every split the release has)")
    d.add_argument("--check-images", default="none", choices=("none", "exists", "decode"),
                   help="drop records whose images are missing (exists) or also undecodable (decode)")
    d.add_argument("--image-dir", default=None,
                   help="where images embedded in the release (HF parquet) are written (default: OUT/images)")
    d.add_argument("--allow-outside-images", action="store_true",
                   help="keep image paths outside the release folder (absolute, ../, symlinks out); default: drop them")
    d.set_defaults(func=_cmd_data_convert)

    d = data_sub.add_parser("sources", help="every data source: modality, tasks, licence, where to get it, split sizes")
    d.set_defaults(func=_cmd_data_sources)

    d = data_sub.add_parser("stats", help="counts by source/task/modality/split, size and length histograms")
    d.add_argument("dir", help="folder of record shards (.jsonl / .parquet)")
    d.add_argument("--out", default=None, help="where to write stats.json/.md and PNGs (default: DIR/stats)")
    d.set_defaults(func=_cmd_data_stats)

    d = data_sub.add_parser("mix", help="build a stage's training set from weighted sources (streaming)")
    d.add_argument("recipe", help="mixture recipe YAML, e.g. recipes/data/stage1_mix.yaml")
    d.add_argument("overrides", nargs="*", help="key=value overrides, e.g. total=1000 seed=1")
    d.set_defaults(func=_cmd_data_mix)

    d = data_sub.add_parser("overlap", help="train/benchmark contamination: duplicate images and questions")
    d.add_argument("train", help="training records folder (shards)")
    d.add_argument("bench", help="benchmark records folder (shards)")
    d.add_argument("--out", default=None, help="report folder (default: TRAIN/overlap)")
    d.add_argument("--drop", default=None, help="write the training set without the overlapping records here")
    d.add_argument("--image-distance", type=int, default=6, help="max perceptual-hash Hamming distance (of 64 bits)")
    d.add_argument("--text-similarity", type=float, default=0.8,
                   help="min Jaccard similarity of question character 5-grams")
    d.add_argument("--drop-on", default="image_exact,image_near,text",
                   help="comma-separated match kinds that drop a record (image_exact, image_near, text, question)")
    d.set_defaults(func=_cmd_data_overlap)

    d = data_sub.add_parser("cell", help="build the Cell detection benchmark from microscopy instance masks")
    d.add_argument("--masks", required=True, help="folder of images + instance masks (see medmo.data.sources.masks)")
    d.add_argument("--out", required=True, help="output folder: records.jsonl, images/, report.json")
    d.add_argument("--tile", type=int, default=0, help="cut images into N x N tiles, one record each (0: whole images)")
    d.add_argument("--min-area", type=int, default=10, help="instances under this many pixels are not cells")
    d.add_argument("--recipe", default=None, help="optional YAML of CellConfig fields (strata thresholds)")
    d.add_argument("overrides", nargs="*", help="key=value CellConfig overrides, e.g. small_diameter=12")
    d.set_defaults(func=_cmd_data_cell)

    d = data_sub.add_parser("retrieval", help="caption records -> image-to-caption multiple choice with hard negatives")
    d.add_argument("src", help="folder of caption records (`medmo data convert roco|pmc_oa|medtrinity`)")
    d.add_argument("--out", required=True, help="output folder for the retrieval records and report.json")
    d.add_argument("--choices", type=int, default=4, help="options per question (the right caption + negatives)")
    d.add_argument("--seed", type=int, default=0, help="seed for fillers and the right letter's position")
    d.add_argument("overrides", nargs="*", help="key=value RetrievalConfig overrides, e.g. max_similarity=0.8")
    d.set_defaults(func=_cmd_data_retrieval)

    d = data_sub.add_parser("medsg-predictions",
                            help="MedSG-Bench evaluation output (model answers) -> predictions for `medmo score`")
    d.add_argument("file", help="the official evaluation's output JSON, e.g. qwen2_5_vl_referring_*.json")
    d.add_argument("--out", required=True, help="predictions .jsonl (unified records + \"response\")")
    d.set_defaults(func=_cmd_data_medsg_predictions)

    p = sub.add_parser("infer", help="answer one image (PNG/JPEG/DICOM/NIfTI): vqa, report or ground; draw boxes")
    p.add_argument("--model", required=True, help="checkpoint folder or hub id")
    p.add_argument("--image", required=True, help="PNG/JPEG/TIFF, DICOM (.dcm) or NIfTI (.nii/.nii.gz) file")
    p.add_argument("--prompt", default=None, help="the question (vqa), or a prompt replacing the task's default")
    p.add_argument("--task", default="vqa", choices=("vqa", "report", "ground"), help="what to ask (default vqa)")
    p.add_argument("--target", default=None, help="ground: what to find, e.g. nodule")
    p.add_argument("--draw", default=None, help="write the image with the answer's boxes drawn to this PNG")
    p.add_argument("--json", action="store_true", help="print a JSON object (answer, boxes in pixels and grid)")
    p.add_argument("--window", default=None, help="DICOM/CT window: preset (lung, bone, brain, ...) or centre,width")
    p.add_argument("--slice", type=int, default=None, help="NIfTI slice index (default: the middle one)")
    p.add_argument("--frame", type=int, default=None, help="multi-frame DICOM frame / 4-D NIfTI volume")
    p.add_argument("--max-new-tokens", type=int, default=256, help="generation budget")
    p.add_argument("--max-pixels", type=int, default=None, help="model input pixel budget (default: processor's)")
    p.add_argument("--dtype", default="auto", help="auto (bfloat16 on GPU, float32 on CPU) | float32 | bfloat16 | float16")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    _add_budget_flags(p, "is an error")
    p.set_defaults(func=_cmd_infer)

    p = sub.add_parser("serve", help="OpenAI-compatible HTTP API, /v1/ground|report|vqa, and a web page at /")
    p.add_argument("--model", required=True, help="checkpoint folder or hub id")
    p.add_argument("--host", default="127.0.0.1", help="bind address (set --api-key when it is not loopback)")
    p.add_argument("--api-key", dest="api_key", default=None,
                   help="require `Authorization: Bearer KEY` (default: $MEDMO_API_KEY; none: open)")
    p.add_argument("--api-key-file", dest="api_key_file", default=None,
                   help="read the key from this file (keeps it out of `ps`)")
    p.add_argument("--port", type=int, default=8000, help="port")
    p.add_argument("--max-batch-size", type=int, default=16, help="dynamic batching: most requests per call (1 = off)")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="dynamic batching: wait window for a batch")
    p.add_argument("--max-new-tokens", type=int, default=256, help="default generation budget per request")
    p.add_argument("--max-body-mb", type=float, default=20.0, help="larger request bodies get 413")
    _add_budget_flags(p, "gets 413")
    p.add_argument("--max-pixels", type=int, default=None, help="model input pixel budget (default: processor's)")
    p.add_argument("--dtype", default="auto", help="auto (bfloat16 on GPU, float32 on CPU) | float32 | bfloat16 | float16")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--max-prompt-tokens", type=int, default=16384, help="longer prompts (text + images) get 400")
    p.add_argument("--max-request-tokens", type=int, default=8192, help="n x max_tokens above this gets 400")
    p.add_argument("--header-timeout-s", type=float, default=10.0, help="close connections slower to send headers")
    p.add_argument("--body-timeout-s", type=float, default=60.0, help="bodies slower than this get 408")
    p.add_argument("--max-connections", type=int, default=512, help="requests beyond this many connections get 503")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("eval", help="evaluate a model on benchmarks or record files (`medmo eval merge` joins shards)")
    p.add_argument("--model", help="checkpoint folder or hub id (hf/vllm), or served model name (openai)")
    p.add_argument("--suite", help="suite name in recipes/eval (vqa, textqa, report, grounding, all) or a YAML path")
    p.add_argument("--benchmark", action="append", help="registered benchmark name(s), repeatable or comma-separated")
    p.add_argument("--list", action="store_true",
                   help="list every benchmark: family, published item count, headline metric, licence, source")
    p.add_argument("--records", help="a .jsonl/.parquet of unified records, scored by task (images relative to it)")
    p.add_argument("--data", help="the benchmark's data folder, or a root holding one folder per benchmark")
    p.add_argument("--limit", type=int, help="first N items of each benchmark")
    p.add_argument("--shard", help="i/n: evaluate every n-th item from i (writes OUT/shard-i-of-n)")
    p.add_argument("--out", help="run folder (default runs/eval); re-running resumes it")
    p.add_argument("--backend", help="hf (default) | vllm | openai")
    p.add_argument("--base-url", dest="base_url", help="openai backend: server base URL, e.g. http://host:8000/v1")
    p.add_argument("--concurrency", type=int, help="openai backend: requests in flight")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="hf backend: sequences per batch (default 16)")
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int,
                   help="generation budget per answer (default per benchmark: 4096 VQA/grounding, 8192 text QA/reports)")
    p.add_argument("--protocol", choices=("default", "paper"),
                   help="paper: MedEvalKit scoring, the paper's item sets and a judge (required), as MedMO's tables")
    p.add_argument("--mode", choices=("strict", "medevalkit"), help="answer scoring rules (default strict)")
    p.add_argument("--box-format", dest="box_format", type=check_box_format,
                   help="coordinates in responses: grid (0-1000), pixels (of the original image) or resized (of the "
                        "processor's resized input); default: the model family's (Qwen2.5-VL: resized)")
    p.add_argument("--grounding-protocol", dest="grounding_protocol", choices=("set", "medsg"),
                   help="set IoU over all boxes (default) or MedSG-Bench's first-box rule")
    p.add_argument("--dtype", help="auto (default: bfloat16 on GPU, float32 on CPU) | float32 | bfloat16 | float16")
    p.add_argument("--device", help="cpu | cuda (default: cuda when available)")
    p.add_argument("--min-pixels", dest="min_pixels", type=int, help="image budget: min pixels per image")
    p.add_argument("--max-pixels", dest="max_pixels", type=int, help="image budget: max pixels per image")
    p.add_argument("--judge-model", help="LLM judge model for open answers (off unless given)")
    p.add_argument("--judge-base-url", help="judge endpoint (OpenAI-compatible); key from $OPENAI_API_KEY")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any EvalConfig override, e.g. judge.timeout=30")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG charts")
    p.add_argument("--skip-missing", action="store_true",
                   help="list benchmarks whose data is not found as skipped instead of stopping")
    p.set_defaults(func=_cmd_eval, eval_command=None)
    eval_sub = p.add_subparsers(dest="eval_command", metavar="merge")
    m = eval_sub.add_parser("merge", help="combine shard run folders into one")
    m.add_argument("dirs", nargs="+", help="run folders written by `medmo eval --shard i/n`")
    m.add_argument("--out", help="merged run folder (default: next to the first, named merged)")
    m.add_argument("--no-plots", action="store_true", help="skip the PNG charts")

    p = sub.add_parser("score", help="score a file of unified records + \"response\" (saved predictions), no model")
    p.add_argument("--predictions", required=True, help=".jsonl: one unified record per line plus its \"response\"")
    p.add_argument("--out", required=True, help="run folder for samples.jsonl, results.json, results.md")
    p.add_argument("--box-format", default="grid", type=check_box_format,
                   help="coordinates in responses: grid (0-1000), pixels (of the original image) or "
                        "resized:FACTOR:MIN:MAX (of a Qwen2.5-VL-style processor's resized input, e.g. resized:28:3136:12845056)")
    p.add_argument("--grounding-protocol", default=None, choices=("set", "medsg"),
                   help="set IoU over all boxes or MedSG-Bench's first-box rule (its published tables); default: "
                        "set, or with --mode medevalkit the --benchmark's published rule")
    p.add_argument("--mode", default="strict", choices=("strict", "medevalkit"), help="answer scoring rules")
    p.add_argument("--benchmark", default=None, help="score with this registered benchmark's rules instead of by task")
    p.add_argument("--judge-model", default=None, help="LLM judge model for open answers (off unless given)")
    p.add_argument("--judge-base-url", default=None, help="judge endpoint (OpenAI-compatible)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG charts")
    p.set_defaults(func=_cmd_score)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides after an option (`medmo train R.yaml --prepare max_steps=5`): argparse
    # stops filling the positional list at the first option, so the rest arrives here
    overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    if overrides and isinstance(getattr(args, "overrides", None), list):
        args.overrides += overrides
        extra = [a for a in extra if a not in overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    level = logging.DEBUG if args.verbose else logging.INFO
    if int(os.environ.get("RANK", "0")) != 0:  # distributed runs (accelerate launch) log on rank 0 only
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"medmo {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
