"""Labelled subsets for semi-supervised evaluation: class-balanced seeded draws, and subset files.

A drawn subset takes the same number of images from every class, max(1, round(fraction * N / C)), capped
at the class size, so a 1% subset of a balanced dataset is about 1% of it (SimCLR's ImageNet 1% list has
12,811 images, ~13 per class). Subset files hold one entry per line: SimCLR's `1percent.txt` format (image
file names, matched against an image_folder dataset's paths) or, for in-memory datasets, indices into the
train split. Blank lines and lines starting with '#' are ignored; a name ending in .gz is read gzip-compressed.
"""
from __future__ import annotations

import gzip
import os
import re
from pathlib import Path
from typing import Sequence

import torch

from ssl_bench.data.bundle import VAL_HOLDOUT
from ssl_bench.data.splits import stratum_of
from ssl_bench.data.types import DatasetBundle, ImageSet
from ssl_bench.errors import UserError
from ssl_bench.jsonl import own_folder, write_text_atomic


def check_fraction(value: object, field: str) -> float:
    """A label fraction in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise UserError(f"{field}: bad value {value!r}; allowed: a number in (0, 1], e.g. 0.01 for 1% of labels")
    return float(value)


def per_class_count(num_images: int, num_classes: int, fraction: float) -> int:
    """Images taken from each class: the class-balanced share of fraction * num_images, at least one."""
    return max(1, round(fraction * num_images / max(num_classes, 1)))


def balanced_subset(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Sorted indices of a class-balanced random subset of `labels` (int N, or N x K multi-label grouped by
    first positive class). Deterministic in (labels, fraction, seed); every class gets at least one image."""
    fraction = check_fraction(fraction, "label fraction")
    strata = stratum_of(labels)
    n = len(strata)
    classes, counts = torch.unique(strata, sorted=True, return_counts=True)
    take = torch.clamp(torch.full_like(counts, per_class_count(n, len(classes), fraction)), max=counts)
    gen = torch.Generator().manual_seed(int(seed))
    shuffled = torch.randperm(n, generator=gen)
    grouped = shuffled[torch.argsort(strata[shuffled], stable=True)]  # by class, random order inside
    starts = torch.cumsum(counts, 0) - counts
    rank_in_class = torch.arange(n) - torch.repeat_interleave(starts, counts)
    chosen = grouped[rank_in_class < torch.repeat_interleave(take, counts)]
    return torch.sort(chosen).values


MAX_SUBSET_FILE_BYTES = 256 << 20  # ImageNet's whole train listing is ~40 MB


def read_subset_lines(path: str | os.PathLike) -> list[tuple[int, str]]:
    """(line number, entry) of each entry of a subset file, in order (whitespace stripped, blanks and '#'
    comments skipped). Errors name the file and line numbers, never what the lines say: a path given by
    mistake may point at a file whose content belongs nowhere near results.jsonl."""
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise UserError(f"subset_file: {str(p)!r} does not exist; allowed: a text file with one image file name "
                        "per line (SimCLR's 1percent.txt format)")
    if p.stat().st_size > MAX_SUBSET_FILE_BYTES:
        raise UserError(f"subset_file: {str(p)!r} is {p.stat().st_size} bytes; allowed: a subset file of at most "
                        f"{MAX_SUBSET_FILE_BYTES} bytes")
    try:
        text = gzip.decompress(p.read_bytes()).decode() if p.suffix == ".gz" else p.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError, EOFError, gzip.BadGzipFile):
        raise UserError(f"subset_file: {str(p)!r} is not a UTF-8 text file; allowed: one image file name per "
                        "line") from None
    entries = [(i + 1, line.strip()) for i, line in enumerate(text.splitlines())]
    entries = [(i, e) for i, e in entries if e and not e.startswith("#")]
    if not entries:
        raise UserError(f"subset_file: {str(p)!r} has no entries; allowed: one image file name per line")
    first: dict[str, int] = {}
    dupes = [(first[e], i) for i, e in entries if first.setdefault(e, i) != i]
    if dupes:
        raise UserError(f"subset_file: {str(p)!r} lists {len(dupes)} entr{'y' if len(dupes) == 1 else 'ies'} more "
                        f"than once (line {dupes[0][1]} repeats line {dupes[0][0]}); allowed: each image once")
    return entries


def read_subset_file(path: str | os.PathLike) -> list[str]:
    """The entries of a subset file, in order (see read_subset_lines)."""
    return [e for _, e in read_subset_lines(path)]


def _lines(bad: Sequence[int]) -> str:
    """'line 3' / 'lines 3, 7, 9, ...': where the bad entries are."""
    shown = ", ".join(str(n) for n in bad[:5]) + (", ..." if len(bad) > 5 else "")
    return f"line{'s' if len(bad) > 1 else ''} {shown}"


def check_subset_file(path: object, field: str) -> str:
    """Validation of a `subset_file` param: a path to an existing, non-empty subset file. Relative paths are
    relative to the current folder, as when the run reads it."""
    if not isinstance(path, str) or not path:
        raise UserError(f"{field}: bad value {path!r}; allowed: a path to a text file")
    full = Path(os.path.expanduser(path)).absolute()
    if not full.is_file():
        raise UserError(f"{field}: bad value {path!r}: {str(full)!r} is not a file; allowed: a subset file, one entry "
                        "per line (SimCLR's 1percent.txt format; a relative path starts at the current folder)")
    try:
        read_subset_file(full)
    except UserError as exc:  # its message starts "subset_file: "
        raise UserError(f"{field}: {str(exc).split(': ', 1)[1]}") from None
    return path


_HEADER_FRACTION = re.compile(r"#\s*label_fraction\s*:\s*([0-9.eE+-]+)\s*$")
_PERCENT_NAME = re.compile(r"^(\d+(?:\.\d+)?)percent\.txt(?:\.gz)?$")  # SimCLR's 1percent.txt, 10percent.txt


def declared_fraction(path: str | os.PathLike, field: str) -> float:
    """The nominal label fraction a subset file stands for: its `# label_fraction: 0.01` header line, else
    SimCLR's file name `<N>percent.txt` (N / 100). Neither: a UserError asking for `subset_fraction`, since the
    realised share (12,811 / 1,281,167 for SimCLR's 1%) is no fraction a table or published row uses."""
    p = Path(os.path.expanduser(str(path)))
    text = gzip.decompress(p.read_bytes()).decode() if p.suffix == ".gz" else p.read_text()
    for line in text.splitlines():
        found = _HEADER_FRACTION.match(line.strip())
        if found:
            return check_fraction(float(found.group(1)), f"{field} (the header of {p.name})")
    named = _PERCENT_NAME.match(p.name)
    if named:
        return check_fraction(float(named.group(1)) / 100, f"{field} (from the name {p.name})")
    raise UserError(f"{field}: missing for subset file {p.name!r}; allowed: the label fraction the file stands for "
                    "(e.g. 0.01), or a '# label_fraction: 0.01' line in the file")


def match_names(names: Sequence[str], paths: Sequence[str], source: str = "subset_file",
                lines: Sequence[int] | None = None) -> torch.Tensor:
    """Sorted indices of `paths` named by `names`. A name without '/' matches a path's file name; one with
    '/' (e.g. 'n01440764/n01440764_10026.JPEG') matches the end of a path. Names matching nothing, or
    ambiguous ones, raise UserError naming their line numbers (`lines`, else their positions)."""
    lines = list(lines) if lines is not None else list(range(1, len(names) + 1))
    by_key: dict[str, list[int]] = {}
    depths = {n.count("/") for n in names}
    for i, path in enumerate(paths):
        parts = Path(path).parts
        for d in depths:
            if len(parts) > d:
                by_key.setdefault("/".join(parts[len(parts) - d - 1:]), []).append(i)
    missing = [n for n, name in zip(lines, names) if name not in by_key]
    if missing:
        raise UserError(f"{source}: {len(missing)} of {len(names)} entries are not images of the dataset "
                        f"({_lines(missing)}); allowed: file names of the dataset's train images (one per line)")
    ambiguous = [n for n, name in zip(lines, names) if len(by_key[name]) > 1]
    if ambiguous:
        raise UserError(f"{source}: the names on {_lines(ambiguous)} match several train images; allowed: names "
                        "unique in the dataset (write them as 'class_folder/file_name')")
    return torch.tensor(sorted(by_key[n][0] for n in names), dtype=torch.long)


def parse_indices(entries: Sequence[str], size: int, source: str = "subset_file",
                  lines: Sequence[int] | None = None) -> torch.Tensor:
    """Sorted indices from entries that are integers in [0, size)."""
    lines = list(lines) if lines is not None else list(range(1, len(entries) + 1))
    bad = [n for n, e in zip(lines, entries) if not e.isdigit() or int(e) >= size]
    if bad:
        raise UserError(f"{source}: {len(bad)} of {len(entries)} entries are not indices of the train split "
                        f"({_lines(bad)}); allowed: integers 0..{size - 1}, one per line (or image file names for "
                        "an image_folder dataset)")
    return torch.tensor(sorted(int(e) for e in entries), dtype=torch.long)


def subset_from_file(path: str | os.PathLike, paths: Sequence[str] | None, size: int) -> torch.Tensor:
    """Indices into a train split of `size` images given by a subset file: names for a folder dataset
    (`paths` given), indices otherwise."""
    numbered = read_subset_lines(path)
    lines, entries = [n for n, _ in numbered], [e for _, e in numbered]
    source = f"subset_file {str(path)!r}"
    return match_names(entries, paths, source, lines) if paths is not None else \
        parse_indices(entries, size, source, lines)


def subset_file_split(path: str | os.PathLike, bundle: DatasetBundle) -> tuple[ImageSet, torch.Tensor, ImageSet]:
    """(pool, indices into pool, val) for a subset file. A folder dataset whose val split was carved out of
    train/ looks names up in the whole train listing (train + that val hold-out: SimCLR's 1percent.txt names
    images of all of ImageNet train), and the listed images are taken out of the val it returns, so they never
    choose hyperparameters. Otherwise: indices (or names) of the train split, val unchanged."""
    train, val = bundle.train, bundle.val
    if train.paths is None or val.paths is None or bundle.split_info.get("val", {}).get("made") != VAL_HOLDOUT:
        return train, subset_from_file(path, train.paths, len(train)), val
    pool = train.concat(val)
    idx = subset_from_file(path, pool.paths, len(pool))
    keep = torch.ones(len(val), dtype=torch.bool)
    keep[idx[idx >= len(train)] - len(train)] = False
    return pool, idx, val.subset(keep.nonzero().flatten())


def save_subset(out_dir: str | os.PathLike, stem: str, indices: torch.Tensor, paths: Sequence[str] | None,
                header: str) -> Path:
    """Write the subset beside the results (out_dir/label_subsets/<stem>.txt) in the format
    `subset_from_file` reads back: file names relative to the class folder for a folder dataset, else indices."""
    folder = own_folder(Path(out_dir) / "label_subsets")  # never written through a planted link
    idx = indices.tolist()
    if paths is not None:
        lines = ["/".join(Path(paths[i]).parts[-2:]) for i in idx]
    else:
        lines = [str(i) for i in idx]
    target = folder / f"{stem}.txt"
    write_text_atomic(target, "".join(f"# {h}\n" for h in header.splitlines()) + "\n".join(lines) + "\n")
    return target
