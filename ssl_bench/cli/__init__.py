"""`ssl-bench` command line, one module per command group (main: list, validate, export; run: run, status;
tables: table, compare, report)."""
from ssl_bench.cli.main import main

__all__ = ["main"]
