"""User-facing errors: the CLI turns these into one line on stderr and exit code 2."""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad YAML, unknown name, missing file). Never a traceback."""


class UnknownNameError(UserError, KeyError):
    def __init__(self, kind: str, name: str, known: list[str], where: str | None = None):
        import difflib

        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        prefix = f"{where}: " if where else ""
        msg = f"{prefix}unknown {kind} '{name}'{hint} Known {kind}s: {', '.join(sorted(known)) or '(none)'}"
        super().__init__(msg)
        self.kind, self.name, self.known = kind, name, known

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DatasetUnavailableError(UserError):
    """A dataset cannot be found offline; the message says where to place its files."""
