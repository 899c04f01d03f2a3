"""`ssl-bench` command line: run, validate, list, table, report. User errors exit with code 2."""
from __future__ import annotations

import argparse
import errno
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from .suite import Suite

RUN_EPILOG = """exit codes:
  0    every row of the suite is ok
  2    a user error (bad suite, bad --out, pretrain.device cuda:N under torchrun, ...) or an output disk that
       is full, read-only or not writable: one line on stderr names the field or the path and errno
  3    the suite finished but some rows failed or collapsed, or are still held by another worker (one summary
       line; see OUT/results.jsonl and the table); failed rows are retried by --resume
  130  interrupted; continue with --resume

--resume skips recorded evaluations and continues a half-trained run from its checkpoint.pt. A checkpoint.pt
or final.pt that does not load (truncated, garbage, or a pickle that would run code: checkpoints are read
with weights_only) is renamed to <name>.bad with a warning, and what it held is trained again.
Under torchrun use pretrain.device cuda or auto (rank i takes GPU LOCAL_RANK; pick GPUs with
CUDA_VISIBLE_DEVICES); cuda:N is refused there."""


def _cmd_run(args: argparse.Namespace) -> int:
    from . import distributed as dist
    from .launch import init_distributed, refuse_pinned_cuda
    from .runner import default_out_dir, run_suite
    from .suite import load_suite

    suite = load_suite(args.suite)  # validation first: nothing is written before it passes
    out = Path(args.out) if args.out else default_out_dir(suite)
    refuse_pinned_cuda(suite.pretrain["device"])  # before init_distributed pins this rank to a GPU
    init_distributed()
    run_suite(suite, out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    dist.barrier()  # every rank judges the same, complete ledger
    problems = suite_problems(suite, out)
    if dist.is_main() and suite.output["table"]:
        from .tables import summary_table

        print()
        print(summary_table(str(out)))
    if dist.is_main() and suite.output["report"]:
        from .report import write_report

        print(f"report: {write_report(str(out))}")
    if problems:
        _complain(problems)
    return 3 if problems else 0


def suite_problems(suite: Suite, out: Path) -> str | None:
    """None when every row of this suite in OUT/results.jsonl is ok, else a one-line summary of what is not."""
    from .results_store import ResultsStore
    from .run_config import eval_key, expand

    wanted = {(s.run_id, eval_key(e.name, e.params)) for s in expand(suite) for e in suite.evaluations}
    rows = [r for r in ResultsStore(out).load() if (r.get("run_id"), r.get("eval_key")) in wanted]
    failed = sum(r.get("status") not in ("ok", "collapsed") for r in rows)
    collapsed = sum(r.get("status") == "collapsed" for r in rows)
    missing = len(wanted - {(r.get("run_id"), r.get("eval_key")) for r in rows})
    if not (failed or collapsed or missing):
        return None
    held = f", {missing} evaluation(s) not recorded (held by another worker?)" if missing else ""
    return (f"suite finished with problems: {failed} row(s) failed, {collapsed} collapsed{held}; see "
            f"{out / 'results.jsonl'} and the table")


def _cmd_validate(args: argparse.Namespace) -> int:
    from .run_config import num_runs
    from .suite import load_suite

    suite = load_suite(args.suite)
    print(f"{args.suite}: ok ({num_runs(suite)} runs x {len(suite.evaluations)} evaluations)")
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
    r = sub.add_parser("run", help="run a suite: pretrain, evaluate, print the table", epilog=RUN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
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
        from .pretrain_run import DISK_ERRNOS

        if exc.errno not in DISK_ERRNOS:
            raise
        _complain(disk_error_line(exc))
        return 2
    except KeyboardInterrupt:
        _complain("interrupted; continue with --resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
