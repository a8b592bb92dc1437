"""Where a secret ended up on disk: every file under some roots, with archives opened.

A key can reach disk in more places than the run dir: the stage cache, cli.log, temp files, inspect's
own data dir (trace logs, gzipped when rotated; the sample buffer's SQLite files), and inside inspect's
.eval logs, which are zip archives whose members are deflated (a plain byte search of the .eval file
would miss a key in them). So the scan reads every file's bytes, opens zip archives member by member
(recursively) and gunzips gzip files, and looks at file names too.

It looks for any `PIECE`-character piece of the secret, not only the whole of it: a truncated key
("sk-test-k3y-never-pr...") leaks as surely as the full one, while a masked one as OpenAI prints it
(first 3-7 and last 4 characters) contains no such piece and is not counted.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

PIECE = 12


@dataclass
class Scan:
    hits: list[str] = field(default_factory=list)  # "file" or "file!member" holding a piece of the secret
    scanned: list[str] = field(default_factory=list)  # every file and archive member read
    # archives that could not be opened: their raw bytes were searched, but a deflated member escapes
    # a raw search, so a clean scan needs this empty too
    unreadable: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.hits and not self.unreadable


def _pattern(secret: str) -> re.Pattern[bytes]:
    raw = secret.encode()
    assert len(raw) >= PIECE, "a secret this short cannot be told apart from ordinary text"
    return re.compile(b"|".join(re.escape(raw[i:i + PIECE]) for i in range(len(raw) - PIECE + 1)))


# inspect writes .eval members with zstd (zip method 93), which zipfile cannot read before Python 3.14
ZIP_ZSTANDARD = 93


def _zstd_member(archive: bytes, info: zipfile.ZipInfo) -> bytes:
    """A zstd member's bytes: its raw data sits after the local header (30 bytes, then the name and the
    extra field, whose lengths are at offsets 26 and 28), one or more zstd frames."""
    import zstandard

    name_len, extra_len = struct.unpack_from("<HH", archive, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len
    raw = archive[start:start + info.compress_size]
    try:
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True).read()
    except zstandard.ZstdError as e:
        raise zlib.error(f"zstd: {e}") from None


def _scan_bytes(data: bytes, name: str, pattern: re.Pattern[bytes], out: Scan, depth: int = 0) -> None:
    out.scanned.append(name)
    if pattern.search(data):
        out.hits.append(name)
    if depth > 3:  # an archive in an archive in ...: deep enough for any real log
        return
    if data[:4] == b"PK\x03\x04" or zipfile.is_zipfile(io.BytesIO(data)):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                for info in z.infolist():
                    if pattern.search(info.filename.encode()):
                        out.hits.append(f"{name}!{info.filename} (member name)")
                    member = _zstd_member(data, info) if info.compress_type == ZIP_ZSTANDARD else z.read(info)
                    _scan_bytes(member, f"{name}!{info.filename}", pattern, out, depth + 1)
        except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, struct.error):
            out.unreadable.append(name)
    elif data[:2] == b"\x1f\x8b":
        d, chunks = gzip.GzipFile(fileobj=io.BytesIO(data)), []
        try:
            while chunk := d.read(1 << 16):
                chunks.append(chunk)
        except (OSError, EOFError, zlib.error):  # torn: the part that is there, and said
            out.unreadable.append(name)
        _scan_bytes(b"".join(chunks), f"{name}!gunzip", pattern, out, depth + 1)


def scan(secret: str, *roots: Path) -> Scan:
    """Every file under `roots` (symlinks not followed: a linked shared model dir is not what the run
    wrote), by content and by name."""
    pattern, out = _pattern(secret), Scan()
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if not p.is_symlink())
        for f in files:
            if pattern.search(str(f.relative_to(root) if f != root else f.name).encode()):
                out.hits.append(f"{f} (file name)")
            if f.is_file():
                _scan_bytes(f.read_bytes(), str(f), pattern, out)
    return out
