"""`ssl-bench` command line: run, status, validate, list, table, report, compare. User errors exit with code 2."""
from __future__ import annotations

import argparse
import sys

from ssl_bench import registry
from ssl_bench.cli.console import complain, disk_error_line
from ssl_bench.errors import DISK_ERRNOS, UserError


def _cmd_validate(args: argparse.Namespace) -> int:
    from ssl_bench.config.run_spec import num_runs
    from ssl_bench.config.suite import load_suite

    suite = load_suite(args.suite, args.overrides, args.sweep)
    print(f"{args.suite}: ok ({num_runs(suite)} runs x {len(suite.evaluations)} evaluations)")
    if args.sweep:
        print(f"methods: {', '.join(m.label for m in suite.methods)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ssl_bench.weights.export import export_run

    path = export_run(args.run_dir, args.format, args.output)
    print(f"wrote {path} and {path}.json")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ssl_bench.cli.listing import run_list

    return run_list(args.kind, args.name)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ssl-bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="write a trained run's encoder as a timm/torchvision state dict + model card")
    e.add_argument("run_dir", help="OUT/runs/<run_id> of a finished run")
    e.add_argument("--format", default="timm", help="timm (default) or torchvision")
    e.add_argument("--output", required=True, help="the .pth file to write (a model card goes to FILE.json)")
    e.set_defaults(func=_cmd_export)
    from ssl_bench.cli.run import add_override_arguments, add_run_parsers

    add_run_parsers(sub)
    v = sub.add_parser("validate", help="check a suite file without running anything")
    v.add_argument("suite")
    add_override_arguments(v)
    v.set_defaults(func=_cmd_validate)
    ls = sub.add_parser("list", help="show registered methods, backbones, evaluations, datasets, loggers, metrics, optimizers, checkpoint formats, launchers, table layouts; "
                                     "with KIND NAME, one plugin's parameters, defaults and allowed values")
    ls.add_argument("kind", nargs="?", choices=list(registry.REGISTRIES))
    ls.add_argument("name", nargs="?", help="one plugin of KIND, e.g. `ssl-bench list methods byol`")
    ls.set_defaults(func=_cmd_list)
    from ssl_bench.cli.tables import add_parsers

    add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from ssl_bench.run.signals import INTERRUPT_EXIT, TERM_EXIT, Terminated, sigterm_as_interrupt

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # overrides may follow options: `run s.yaml --out X a=1`
    if extra and (not hasattr(args, "overrides") or any(x.startswith("-") for x in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        with sigterm_as_interrupt():  # SIGTERM unwinds like Ctrl-C: claims and locks are released
            return int(args.func(args) or 0)
    except UserError as exc:
        complain(f"error: {exc}")
        return 2
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        complain(disk_error_line(exc))
        return 2
    except Terminated:
        complain("terminated (SIGTERM); claims and locks released; continue with --resume")
        return TERM_EXIT
    except KeyboardInterrupt:
        complain("interrupted; continue with --resume")
        return INTERRUPT_EXIT


if __name__ == "__main__":
    sys.exit(main())
