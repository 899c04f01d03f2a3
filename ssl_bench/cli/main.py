"""`ssl-bench` command line: run, status, validate, list, table, report, compare. User errors exit with code 2."""
from __future__ import annotations

import argparse
import errno
import os
import re
import sys

from ssl_bench.errors import DISK_ERRNOS, UserError

def _cmd_validate(args: argparse.Namespace) -> int:
    from ssl_bench.config.run_spec import num_runs
    from ssl_bench.config.suite import load_suite

    suite = load_suite(args.suite)
    print(f"{args.suite}: ok ({num_runs(suite)} runs x {len(suite.evaluations)} evaluations)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ssl_bench.weights.export import export_run

    path = export_run(args.run_dir, args.format, args.output)
    print(f"wrote {path} and {path}.json")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ssl_bench.registry import REGISTRIES

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
    e = sub.add_parser("export", help="write a trained run's encoder as a timm/torchvision state dict + model card")
    e.add_argument("run_dir", help="OUT/runs/<run_id> of a finished run")
    e.add_argument("--format", default="timm", help="timm (default) or torchvision")
    e.add_argument("--output", required=True, help="the .pth file to write (a model card goes to FILE.json)")
    e.set_defaults(func=_cmd_export)
    from ssl_bench.cli.run import add_run_parsers

    add_run_parsers(sub)
    v = sub.add_parser("validate", help="check a suite file without running anything")
    v.add_argument("suite")
    v.set_defaults(func=_cmd_validate)
    ls = sub.add_parser("list", help="show registered methods, backbones, evaluations, datasets")
    ls.add_argument("kind", nargs="?", choices=["methods", "backbones", "evaluations", "datasets"])
    ls.set_defaults(func=_cmd_list)
    from ssl_bench.cli.tables import add_parsers

    add_parsers(sub)
    return p


def _is_rank0() -> bool:
    """From torchrun's environment: a user error may come before the process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


def _complain(line: str) -> None:
    if _is_rank0():  # every rank hits the same error; one line is enough
        print(line, file=sys.stderr, flush=True)


def disk_error_line(exc: OSError) -> str:
    """`error: cannot write PATH: [Errno 28] No space left on device (ENOSPC)`; PATH without a .tmp suffix."""
    path = exc.filename2 or exc.filename  # os.replace(tmp, dst) names dst second
    path = re.sub(r"\.tmp\d*$", "", os.fsdecode(path)) if path else "the output folder"
    verb = "access" if exc.errno == errno.EACCES else "write"
    return f"error: cannot {verb} {path}: [Errno {exc.errno}] {exc.strerror} ({errno.errorcode[exc.errno]})"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        _complain(f"error: {exc}")
        return 2
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        _complain(disk_error_line(exc))
        return 2
    except KeyboardInterrupt:
        _complain("interrupted; continue with --resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
