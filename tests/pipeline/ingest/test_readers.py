"""Utf8Lines: the byte stream CsvReader hands pyarrow, against a line-by-line reference."""

from __future__ import annotations

import io

import pytest

from mgold.pipeline.ingest.readers import Utf8Lines


def reference(raw: bytes) -> tuple[bytes, list[int]]:
    """Slow, obvious twin: BOM dropped, each line decoded alone, bad lines replaced."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    out, bad = [], []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(number)
            line = line.decode("utf-8", "replace").encode("utf-8")
        out.append(line)
    return b"\n".join(out), bad


def read_all(raw: bytes, chunk_bytes: int, read_size: int) -> tuple[bytes, list[int]]:
    bad: list[int] = []
    stream = Utf8Lines(io.BytesIO(raw), lambda line, reason: bad.append(line), chunk_bytes)
    parts = []
    while part := stream.read(read_size):
        parts.append(part)
    return b"".join(parts), bad


CASES = [
    b"",
    b"a,b\n1,2\n",
    b"\xef\xbb\xbfa,b\n1,2",                          # BOM, no final newline
    b"\xef\xbb\xbf", b"\xef\xbb\xbfx\n", b"\xef\xbb",          # BOM alone, BOM = first chunk, a cut BOM
    "a,b\nné,ü\n日本,x\n".encode(),                   # multi-byte characters across chunk edges
    b"a,b\n1,\xff\n2,\xc3\n3,\xc3\xa9\n\xe9t\xe9,4\n",   # invalid, truncated, valid, Latin-1
    b"h\n" + b"x" * 50 + b"\xff\n" + b"y" * 50,       # a line longer than a chunk
]


@pytest.mark.parametrize("raw", CASES)
@pytest.mark.parametrize("chunk_bytes, read_size", [(1, 1), (3, 7), (5, -1), (1 << 20, 1 << 20)])
def test_stream_matches_the_line_by_line_reference(raw, chunk_bytes, read_size):
    assert read_all(raw, chunk_bytes, read_size) == reference(raw)


def test_bad_line_reason_names_the_byte_and_the_line():
    reasons = []
    Utf8Lines(io.BytesIO(b"a\nb\ncd\xfe\n"), lambda line, why: reasons.append((line, why))).read()
    assert reasons == [(3, "invalid UTF-8 (byte 0xfe at byte 3 of line 3)")]
