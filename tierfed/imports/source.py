"""Reading an import file: plain or gzip (told by its first bytes, not its name),
the header checked against the kind's columns, the body streamed in chunks.

Nothing here holds more than one chunk of the file in memory.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tierfed.errors import UserError

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
# Bytes no CSV import file holds; the set-based path uses two of them as COPY's
# delimiter and quote so that each line reaches PostgreSQL whole.
FORBIDDEN = (b"\x00", b"\x01", b"\x02")


def file_sha256(path: Path) -> str:
    """SHA-256 of the file as given (compressed bytes for a .csv.gz)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


MAX_HEADER = 64 * 1024  # bytes of a header row: a file whose first line is longer is not one


@dataclass
class Source:
    """One import file. ``name`` is what the history records (the submitted name over HTTP)."""

    path: Path
    name: str
    columns: tuple[str, ...]
    sha256: str = ""
    size: int = 0
    header: list[str] = field(default_factory=list)
    index: list[int] = field(default_factory=list)  # where each of the kind's columns is in the file
    lines_read: int = 0  # data lines handed on so far (progress)
    # The most bytes the file may hold as read (decompressed), 0 for no limit: a file submitted
    # over HTTP has [limits].max_import_bytes, whose upload limit a gzip file's ratio would pass.
    max_bytes: int = 0

    @classmethod
    def open(cls, path: str | Path, columns: tuple[str, ...], name: str | None = None,
             sha256: str | None = None) -> Source:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"{path}: no such file")
        src = cls(p, name or p.name, columns, size=p.stat().st_size)
        src.sha256 = sha256 or file_sha256(p)
        return src

    @property
    def compressed(self) -> bool:
        with self.path.open("rb") as f:
            return f.read(2) == GZIP_MAGIC

    def _binary(self) -> IO[bytes]:
        try:
            raw = self.path.open("rb")
        except OSError as e:
            raise UserError(f"{self.name}: {e.strerror}") from None
        if raw.read(2) == GZIP_MAGIC:
            raw.seek(0)
            return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        raw.seek(0)
        return raw

    def read_header(self, header: list[str]) -> list[int]:
        """Where each of the kind's columns is in the file; a bad header is one clear error."""
        header = [h.strip().lstrip("\ufeff") for h in header]
        if "" in header:
            raise UserError(f"{self.name}: header has an empty column name (column {header.index('') + 1}: a "
                            f"trailing comma?); needs {','.join(self.columns)}")
        twice = sorted({h for h in header if header.count(h) > 1})
        if twice:
            raise UserError(f"{self.name}: header names {', '.join(twice)} more than once; "
                            f"needs {','.join(self.columns)}, each once")
        missing = [c for c in self.columns if c not in header]
        extra = [h for h in header if h not in self.columns]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing column(s) {', '.join(missing)}")
            if extra:
                parts.append(f"unknown column(s) {', '.join(extra)}")
            raise UserError(f"{self.name}: header has {'; '.join(parts)}; needs {','.join(self.columns)}")
        self.header = header
        self.index = [header.index(c) for c in self.columns]
        return self.index

    def body(self) -> tuple[list[int], Iterator[bytes]]:
        """The column index and the data lines as UTF-8 bytes, a chunk at a time, each chunk
        checked for encoding and forbidden bytes; ``lines_read`` counts the lines handed on."""
        f = self._binary()
        try:
            first = f.readline(MAX_HEADER + 1)
        except (OSError, EOFError, zlib.error) as e:
            f.close()
            raise UserError(f"{self.name}: not a readable gzip file ({e})") from None
        if not first.strip():
            f.close()
            raise UserError(f"{self.name}: empty file; expected a header row with {','.join(self.columns)}")
        if len(first) > MAX_HEADER or (b"\r" in first.rstrip(b"\r\n") and not first.endswith(b"\n")):
            f.close()
            raise UserError(f"{self.name}: its first line is not a header row of at most {MAX_HEADER // 1024} KiB "
                            f"ending in a line break (lines ended by carriage returns alone are not read: save "
                            f"the file with LF or CRLF line endings); expected {','.join(self.columns)}")
        try:
            header = next(csv.reader([first.removeprefix(b"\xef\xbb\xbf").decode("utf-8")]))
        except UnicodeDecodeError:
            f.close()
            raise UserError(f"{self.name}: not UTF-8 text (near line 1)") from None
        except csv.Error as e:
            f.close()
            raise UserError(f"{self.name}: the header row cannot be read as CSV ({e}); expected "
                            f"{','.join(self.columns)}") from None
        try:
            index = self.read_header(header)
        except UserError:
            f.close()
            raise

        def chunks() -> Iterator[bytes]:
            decoder = codecs.getincrementaldecoder("utf-8")()
            total = len(first)
            try:
                while True:
                    try:
                        block = f.read(CHUNK)
                    except (OSError, EOFError, zlib.error) as e:
                        raise UserError(f"{self.name}: not a readable gzip file ({e})") from None
                    if not block:
                        break
                    total += len(block)
                    if self.max_bytes and total > self.max_bytes:
                        raise UserError(f"{self.name}: holds more than {self.max_bytes} bytes once decompressed, this "
                                        "node's limit ([limits].max_import_bytes): split it into smaller files")
                    try:
                        decoder.decode(block)
                    except UnicodeDecodeError as e:
                        line = self.lines_read + 2 + block[: e.start].count(b"\n")
                        raise UserError(f"{self.name}: not UTF-8 text (near line {line})") from None
                    for bad in FORBIDDEN:
                        at = block.find(bad)
                        if at >= 0:
                            line = self.lines_read + 2 + block[:at].count(b"\n")
                            raise UserError(f"{self.name}: line {line} holds the control character "
                                            f"U+{bad[0]:04X}, which no import file may hold")
                    self.lines_read += block.count(b"\n")
                    yield block
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    raise UserError(f"{self.name}: not UTF-8 text (near line {self.lines_read + 2})") from None
            finally:
                f.close()

        return index, chunks()

    def rows(self) -> tuple[list[int], Iterator[tuple[int, list[str]]]]:
        """The column index and the rows as (line, fields), through Python's csv reader."""
        index, chunks = self.body()
        text = io.TextIOWrapper(io.BufferedReader(_ChunkReader(chunks)), encoding="utf-8", newline="")
        reader = csv.reader(text)

        def gen() -> Iterator[tuple[int, list[str]]]:
            try:
                for row in reader:
                    yield reader.line_num + 1, row
            except csv.Error as e:
                raise UserError(f"{self.name}: line {reader.line_num + 1}: {e}") from None

        return index, gen()


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks (for TextIOWrapper)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
