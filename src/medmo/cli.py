"""The `medmo` command (this file only parses arguments and dispatches).

MedMO for medical images on Qwen3-VL: convert datasets, train the four stages,
evaluate on medical benchmarks, and answer, report and ground on real images.
Everything runs on CPU with the tiny model; no network is needed.

Each command's options are generated from its config dataclass (medmo.cli_args): the
field's help, default and choices live there, so a new option is one field.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from medmo.cli_args import GIVEN, add_config_arguments, config_from_args

EPILOG = """examples:
  medmo demo                                  the whole pipeline on CPU (runs/demo/)
  medmo tiny --out runs/tiny                  build the tiny Qwen3-VL checkpoint offline
  medmo train recipes/tiny/pipeline.yaml      train stages 1-4 (key=value overrides)
  medmo data convert vqa_rad --raw PATH --out data/vqa_rad
  medmo eval --model DIR --suite vqa --data ../shared/data --out runs/eval
  medmo score --predictions FILE.jsonl --box-format pixels --out runs/score
  medmo infer --model DIR --image ct.dcm --task ground --target nodule --draw out.png
  medmo serve DIR                             API + web page at http://127.0.0.1:8000/
  medmo serve --upstream URL                  the same, generating with an OpenAI-compatible server

Run `medmo COMMAND --help` for each command's options."""


def _cmd_tiny(args) -> int:
    from medmo.model.tiny import TinyConfig, build_tiny

    print(build_tiny(args.out, config_from_args(TinyConfig, args), arch=args.arch))
    return 0


def _cmd_demo(args) -> int:
    from medmo.demo import DemoConfig, run

    run(config_from_args(DemoConfig, args))
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
        # recipe, --data-root and --out are train's own arguments (not generated), so they are passed by name
        print(run(load_config(RehearseConfig, None, args.overrides, recipe=args.recipe, data_root=args.data_root,
                              out=args.out)))
        return 0
    if args.data_root or args.out:
        raise ValueError("--data-root and --out go with --rehearse; a training run's folder is the recipe's output_dir")
    print(run_recipe(args.recipe, args.overrides))
    return 0


def _cmd_export(args) -> int:
    from medmo.train.export import ExportConfig, run

    print(run(config_from_args(ExportConfig, args)))
    return 0


def _cmd_data_convert(args) -> int:
    from medmo.data.convert import ConvertConfig, run

    print(run(config_from_args(ConvertConfig, args)))
    return 0


def _cmd_data_sources(args) -> int:
    from medmo.data.catalogue import catalogue

    print(catalogue())
    return 0


def _cmd_data_stats(args) -> int:
    from medmo.data.stats import StatsConfig, run

    print(run(config_from_args(StatsConfig, args)))
    return 0


def _cmd_data_mix(args) -> int:
    from medmo.data.mixture import MixtureConfig, run

    print(run(config_from_args(MixtureConfig, args, args.recipe, args.overrides)))
    return 0


def _cmd_data_overlap(args) -> int:
    from medmo.data.overlap import OverlapConfig, run

    print(run(config_from_args(OverlapConfig, args)))
    return 0


def _cmd_data_cell(args) -> int:
    from medmo.data.cell import CellConfig, run

    print(run(config_from_args(CellConfig, args, args.recipe, args.overrides)))
    return 0


def _cmd_data_retrieval(args) -> int:
    from medmo.data.retrieval import RetrievalConfig, build

    print(build(config_from_args(RetrievalConfig, args, None, args.overrides)))
    return 0


def _cmd_data_medsg_predictions(args) -> int:
    from medmo.data.schema import write_jsonl
    from medmo.data.sources.medsg_bench import reference_aggregate, reference_predictions

    n = write_jsonl(reference_predictions(args.file), args.out)
    print(f"{args.out}: {n} predictions; published aggregate: {reference_aggregate(args.file)}")
    return 0


def _cmd_infer(args) -> int:
    from medmo.infer import InferConfig, format_result, infer

    print(format_result(infer(config_from_args(InferConfig, args)), as_json=args.json))
    return 0


def _cmd_serve(args) -> int:
    from medmo.serve.api import ServeConfig, run

    model = {}
    if args.model_path:  # `medmo serve MODEL`, as `vllm serve MODEL`
        if "model" in getattr(args, GIVEN, set()) and args.model != args.model_path:
            raise ValueError(f"two models given: {args.model_path} and --model {args.model}; give one")
        model["model"] = args.model_path
    run(config_from_args(ServeConfig, args, **model))
    return 0


def _cmd_eval(args) -> int:
    from medmo.eval.offline import merge
    from medmo.eval.runner import EvalConfig, run, suite_path

    if args.eval_command == "merge":
        print(merge(args.dirs, args.out or f"{args.dirs[0].rstrip('/')}/../merged", plots=not args.no_plots))
        return 0
    if args.list:
        from medmo.eval.benchmarks import catalogue

        print("\n".join(catalogue()))
        return 0
    recipe = suite_path(args.suite) if args.suite else None
    print(run(config_from_args(EvalConfig, args, recipe, args.set or ())))
    return 0


def _cmd_score(args) -> int:
    from medmo.eval.offline import ScoreConfig, score

    print(score(config_from_args(ScoreConfig, args)))
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
    from medmo.data.cell import CellConfig
    from medmo.data.convert import ConvertConfig
    from medmo.data.mixture import MixtureConfig
    from medmo.data.overlap import OverlapConfig
    from medmo.data.retrieval import RetrievalConfig
    from medmo.data.stats import StatsConfig
    from medmo.demo import DemoConfig
    from medmo.eval.offline import ScoreConfig
    from medmo.eval.runner import EvalConfig
    from medmo.infer import InferConfig
    from medmo.model.tiny import TinyConfig
    from medmo.rehearse import RehearseConfig
    from medmo.serve.api import ServeConfig
    from medmo.train.export import ExportConfig

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
    add_config_arguments(p, TinyConfig)
    p.set_defaults(func=_cmd_tiny)

    p = sub.add_parser("demo", help="the whole pipeline on CPU with the tiny model: train 4 stages, evaluate each")
    add_config_arguments(p, DemoConfig)
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
    add_config_arguments(p, RehearseConfig, only=("data_root", "out"), require_missing=False)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("export", help="a training run -> a Hugging Face checkpoint (LoRA merged) with a model card")
    add_config_arguments(p, ExportConfig, positional=("run_dir",))
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("data", help="convert, inspect, mix and check datasets (see `medmo data -h`)")
    p.set_defaults(func=lambda _a, _p=p: _p.print_help())
    data_sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")

    d = data_sub.add_parser("convert", help="a public dataset release -> sharded unified records + report.json")
    add_config_arguments(d, ConvertConfig, positional=("source",))
    d.set_defaults(func=_cmd_data_convert)

    d = data_sub.add_parser("sources", help="every data source: modality, tasks, licence, where to get it, split sizes")
    d.set_defaults(func=_cmd_data_sources)

    d = data_sub.add_parser("stats", help="counts by source/task/modality/split, size and length histograms")
    add_config_arguments(d, StatsConfig, positional=("dir",))
    d.set_defaults(func=_cmd_data_stats)

    d = data_sub.add_parser("mix", help="build a stage's training set from weighted sources (streaming)")
    d.add_argument("recipe", help="mixture recipe YAML, e.g. recipes/data/stage1_mix.yaml")
    d.add_argument("overrides", nargs="*", help="key=value overrides, e.g. total=1000 seed=1")
    add_config_arguments(d, MixtureConfig, require_missing=False)
    d.set_defaults(func=_cmd_data_mix)

    d = data_sub.add_parser("overlap", help="train/benchmark contamination: duplicate images and questions")
    add_config_arguments(d, OverlapConfig, positional=("train", "bench"))
    d.set_defaults(func=_cmd_data_overlap)

    d = data_sub.add_parser("cell", help="build the Cell detection benchmark from microscopy instance masks")
    add_config_arguments(d, CellConfig, required=("out",))
    d.add_argument("--recipe", default=None, help="optional YAML of CellConfig fields (strata thresholds)")
    d.add_argument("overrides", nargs="*", help="key=value CellConfig overrides, e.g. small_diameter=12")
    d.set_defaults(func=_cmd_data_cell)

    d = data_sub.add_parser("retrieval", help="caption records -> image-to-caption multiple choice with hard negatives")
    add_config_arguments(d, RetrievalConfig, positional=("src",))
    d.add_argument("overrides", nargs="*", help="key=value RetrievalConfig overrides, e.g. max_similarity=0.8")
    d.set_defaults(func=_cmd_data_retrieval)

    d = data_sub.add_parser("medsg-predictions",
                            help="MedSG-Bench evaluation output (model answers) -> predictions for `medmo score`")
    d.add_argument("file", help="the official evaluation's output JSON, e.g. qwen2_5_vl_referring_*.json")
    d.add_argument("--out", required=True, help="predictions .jsonl (unified records + \"response\")")
    d.set_defaults(func=_cmd_data_medsg_predictions)

    p = sub.add_parser("infer", help="answer one image (PNG/JPEG/DICOM/NIfTI): vqa, report or ground; draw boxes")
    add_config_arguments(p, InferConfig, required=("model", "image"))
    p.add_argument("--json", action="store_true", help="print a JSON object (answer, boxes in pixels and grid)")
    p.set_defaults(func=_cmd_infer)

    p = sub.add_parser("serve", help="OpenAI-compatible HTTP API, /v1/ground|report|vqa, and a web page at /")
    p.add_argument("model_path", nargs="?", metavar="MODEL", help="checkpoint folder or hub id (same as --model)")
    add_config_arguments(p, ServeConfig)
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("eval", help="evaluate a model on benchmarks or record files (`medmo eval merge` joins shards)")
    p.add_argument("--suite", help="suite name in recipes/eval (vqa, textqa, report, grounding, all) or a YAML path")
    p.add_argument("--list", action="store_true",
                   help="list every benchmark: family, published item count, headline metric, licence, source")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any EvalConfig override, e.g. judge.timeout=30")
    add_config_arguments(p, EvalConfig, skip=("suite",))
    p.set_defaults(func=_cmd_eval, eval_command=None)
    eval_sub = p.add_subparsers(dest="eval_command", metavar="merge")
    m = eval_sub.add_parser("merge", help="combine shard run folders into one")
    m.add_argument("dirs", nargs="+", help="run folders written by `medmo eval --shard i/n`")
    m.add_argument("--out", help="merged run folder (default: next to the first, named merged)")
    m.add_argument("--no-plots", action="store_true", help="skip the PNG charts")

    p = sub.add_parser("score", help="score a file of unified records + \"response\" (saved predictions), no model")
    add_config_arguments(p, ScoreConfig)
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
