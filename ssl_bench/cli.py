"""`ssl-bench` command line: run, validate, list, table, report. User errors exit with code 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UserError


def _cmd_run(args: argparse.Namespace) -> int:
    from . import distributed as dist
    from .launch import init_distributed
    from .runner import default_out_dir, run_suite
    from .suite import load_suite

    suite = load_suite(args.suite)  # validation first: nothing is written before it passes
    out = Path(args.out) if args.out else default_out_dir(suite)
    init_distributed()
    run_suite(suite, out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    if dist.is_main() and suite.output["table"]:
        from .tables import summary_table

        print()
        print(summary_table(str(out)))
    if dist.is_main() and suite.output["report"]:
        from .report import write_report

        print(f"report: {write_report(str(out))}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .run_config import expand
    from .suite import load_suite

    suite = load_suite(args.suite)
    print(f"{args.suite}: ok ({len(expand(suite))} runs x {len(suite.evaluations)} evaluations)")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .registry import REGISTRIES

    for kind, reg in REGISTRIES.items():
        if args.kind and kind != args.kind:
            continue
        print(f"{kind}:")
        for name, obj in reg.items():
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            print(f"  {name:<18} {doc[0] if doc else ''}")
        if kind == "backbones":
            print("  (and any timm model name, e.g. resnet18, resnet50, vit_small_patch16_224)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ssl-bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a suite: pretrain, evaluate, print the table")
    r.add_argument("suite", help="suite YAML file")
    r.add_argument("--out", help="output folder (default: output.dir or results/<suite name>)")
    r.add_argument("--resume", action="store_true", help="continue a killed or extended suite in --out")
    r.add_argument("--overwrite", action="store_true", help="delete --out first")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_run)
    v = sub.add_parser("validate", help="check a suite file without running anything")
    v.add_argument("suite")
    v.set_defaults(func=_cmd_validate)
    ls = sub.add_parser("list", help="show registered methods, backbones, evaluations, datasets")
    ls.add_argument("kind", nargs="?", choices=["methods", "backbones", "evaluations", "datasets"])
    ls.set_defaults(func=_cmd_list)
    from .cli_tables import add_parsers

    add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
