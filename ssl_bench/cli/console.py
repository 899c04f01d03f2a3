"""What the command line prints on a user error: one line on stderr, from rank 0 only under torchrun."""
from __future__ import annotations

import errno
import os
import re
import sys


def is_rank0() -> bool:
    """From torchrun's environment: a user error may come before the process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


def complain(line: str) -> None:
    if is_rank0():  # every rank hits the same error; one line is enough
        print(line, file=sys.stderr, flush=True)


def disk_error_line(exc: OSError) -> str:
    """`error: cannot write PATH: [Errno 28] No space left on device (ENOSPC)`; PATH without a .tmp suffix."""
    path = exc.filename2 or exc.filename  # os.replace(tmp, dst) names dst second
    path = re.sub(r"\.tmp\d*$", "", os.fsdecode(path)) if path else "the output folder"
    verb = "access" if exc.errno == errno.EACCES else "write"
    return f"error: cannot {verb} {path}: [Errno {exc.errno}] {exc.strerror} ({errno.errorcode[exc.errno]})"
