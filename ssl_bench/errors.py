"""User-facing errors: the CLI turns these into one line on stderr and exit code 2."""
from __future__ import annotations

import errno

# A full, read-only or unwritable disk: nothing more can be recorded, so these stop a run (cli: one line, exit 2).
DISK_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT})  # EPERM: chattr +i


class UserError(Exception):
    """A mistake the user can fix (bad YAML, unknown name, missing file). Never a traceback."""


class UnknownNameError(UserError, KeyError):
    def __init__(self, kind: str, name: str, known: list[str], where: str | None = None, note: str = ""):
        import difflib

        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else "."
        prefix = f"{where}: " if where else ""
        msg = f"{prefix}unknown {kind} '{name}'{hint} Known {kind}s: {', '.join(sorted(known)) or '(none)'}{note}"
        super().__init__(msg)
        self.kind, self.name, self.known = kind, name, known

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DatasetError(UserError):
    """A dataset's files are there but unusable (an image that does not decode, an empty class folder).
    A subclass of UserError so that the pipeline can turn it into a failed row, never a traceback."""


class DatasetUnavailableError(DatasetError):
    """A dataset cannot be found offline; the message says where to place its files."""
