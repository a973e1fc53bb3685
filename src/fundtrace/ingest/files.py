"""Finding input files and telling what they are before DuckDB reads them."""

from __future__ import annotations

import glob
import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

from fundtrace.errors import InputError

_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz", ".parquet", ".pq")
_PEEK = 1 << 16


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str  # csv | parquet
    compressed: bool
    sha256: str


def expand(patterns: list[str]) -> list[Path]:
    """Files named directly, inside directories (not recursive) or matched by globs, in order."""
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES))
            if not inside:
                raise InputError(f"{path}: directory holds no .csv, .csv.gz or .parquet files")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_file())
            if not matches:
                raise InputError(f"{pattern}: no file matches")
            found.extend(matches)
        else:
            raise InputError(f"{path}: no such file or directory")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def inspect(path: Path) -> InputFile:
    """Tell CSV from Parquet by content, and refuse what is empty, binary or not UTF-8."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if not head:
        raise InputError(f"{path}: file is empty")
    if head == b"PAR1":
        return InputFile(path, "parquet", False, sha256_of(path))
    compressed = head[:2] == b"\x1f\x8b"
    try:
        if compressed:
            with gzip.open(path, "rb") as fh:
                sample = fh.read(_PEEK)
        else:
            with path.open("rb") as fh:
                sample = fh.read(_PEEK)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: damaged gzip file ({exc})") from None
    if not sample.strip():
        raise InputError(f"{path}: file is empty")
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{path}: file is UTF-16, not UTF-8", hint="convert it with iconv -t UTF-8")
    if b"\x00" in sample:
        raise InputError(f"{path}: not a CSV or Parquet file (binary content)")
    _check_utf8(path, sample)
    first_line = sample.split(b"\n", 1)[0]
    if (b"," not in first_line and b"\t" not in first_line and b";" not in first_line and b"|" not in first_line) and (
        len(first_line) > 200 or not first_line.strip()
    ):
        raise InputError(f"{path}: not a CSV file (no header line with delimited column names)")
    return InputFile(path, "csv", compressed, sha256_of(path))


def _check_utf8(path: Path, sample: bytes) -> None:
    """A file whose header or most lines are not UTF-8 is refused whole (likely GBK/GB18030 from a
    bank system); a few bad lines in a UTF-8 file are left to be rejected row by row."""
    lines = sample.split(b"\n")
    if len(sample) == _PEEK:
        lines = lines[:-1]  # the last line may be cut by the peek window
    bad = []
    for number, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append((number, exc.start, line[exc.start]))
    if bad and (bad[0][0] == 1 or len(bad) > max(1, len(lines) // 2)):
        number, offset, byte = bad[0]
        raise InputError(
            f"{path}: not UTF-8 (byte 0x{byte:02x} on line {number}, column {offset + 1})",
            hint="convert it, e.g. iconv -f GB18030 -t UTF-8",
        )
