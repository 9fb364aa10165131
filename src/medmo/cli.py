"""The `medmo` command: parses arguments and dispatches, nothing else.

    medmo tiny --out DIR                 build the tiny Qwen3-VL checkpoint offline
    medmo demo [--minutes M]             the whole pipeline on CPU with the tiny model
    medmo train RECIPE.yaml [k=v ...]    run a training stage or a pipeline of stages
    medmo eval ...                       evaluate a model on benchmarks
    medmo score ...                      score a file of saved predictions, no model
    medmo infer ...                      answer one image from the shell
    medmo data ...                       convert, inspect and mix datasets
    medmo serve ...                      HTTP API and web page

Run `medmo COMMAND --help` for each command's options.
"""
from __future__ import annotations

import argparse
import logging
import sys


def _cmd_tiny(args) -> int:
    from medmo.model.tiny import build_tiny

    print(build_tiny(args.out))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medmo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:12]))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("tiny", help="build the tiny Qwen3-VL checkpoint (offline)")
    p.add_argument("--out", required=True, help="folder to write the checkpoint to")
    p.set_defaults(func=_cmd_tiny)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
