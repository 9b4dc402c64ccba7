"""io-6's file content: 4 KiB pages of mixed content (random, text-like, sparse and repeating
bodies, from a pool of POOL) behind a header (magic, file id, page number, CRC-32 of the body,
body id). A file's ``Layout`` (the body of each page) regenerates any page, so any read of the
file can be checked against what was written (``mismatched_pages``).
"""

from __future__ import annotations

import mmap
import zlib
from dataclasses import dataclass, field

import numpy as np

from workloads.io import storage

PAGE = storage.ALIGNMENT
POOL = 64  # distinct page bodies a file is built from
_MAGIC = 0x36494143  # "CAI6", little-endian
_HEADER = 24  # magic u32, file id u32, page number u64, body CRC-32 u32, body id u32
_BODY = PAGE - _HEADER
_WORDS = (
    b"GET POST PUT 200 404 500 user order item cache hit miss latency ms request response "
    b"session token disk page block read write sync flush commit queue worker node cluster"
).split()


# -- file content -----------------------------------------------------------------------------
def _text_body(rng: np.random.Generator) -> bytes:
    words = rng.choice(len(_WORDS), size=_BODY // 3)
    text = b" ".join(_WORDS[int(word)] for word in words)
    return (text * 2)[:_BODY]


def make_pool(rng: np.random.Generator) -> np.ndarray:
    """POOL page bodies of mixed content: random, text-like, sparse and repeating patterns."""
    pool = np.zeros((POOL, _BODY), dtype=np.uint8)
    for index in range(POOL):
        kind = index % 4
        if kind == 0:
            pool[index] = rng.integers(0, 256, _BODY, dtype=np.uint8)
        elif kind == 1:
            pool[index] = np.frombuffer(_text_body(rng), dtype=np.uint8)
        elif kind == 2:
            spots = rng.integers(0, _BODY, 32)
            pool[index, spots] = rng.integers(1, 256, 32, dtype=np.uint8)
        else:
            pattern = rng.integers(0, 256, int(rng.integers(2, 64)), dtype=np.uint8)
            pool[index] = np.resize(pattern, _BODY)
    return pool


@dataclass
class Layout:
    """The content of one data file, page by page: regenerable, so any read can be checked."""

    file_id: int
    bodies: np.ndarray  # body id (into pool) of each page; in-place writes change it
    pool: np.ndarray  # (POOL, _BODY) uint8
    pool_crc: np.ndarray = field(init=False)
    pool_pages: np.ndarray = field(init=False)  # the bodies as whole pages, headers blank

    def __post_init__(self) -> None:
        self.pool_crc = np.array([zlib.crc32(body) for body in self.pool], dtype=np.uint32)
        self.pool_pages = np.zeros((len(self.pool), PAGE), dtype=np.uint8)
        self.pool_pages[:, _HEADER:] = self.pool

    @classmethod
    def random(cls, file_id: int, size: int, rng: np.random.Generator, pool: np.ndarray) -> Layout:
        bodies = rng.integers(0, len(pool), size // PAGE).astype(np.uint32)
        return cls(file_id, bodies, pool)

    @property
    def size(self) -> int:
        return len(self.bodies) * PAGE

    def fill(self, pages: np.ndarray, out: np.ndarray) -> None:
        """Write the expected content of ``pages`` (page numbers) into ``out`` (n x PAGE)."""
        bodies = self.bodies[pages]
        out[:] = self.pool_pages[bodies]  # whole rows: far faster than np.take(out=...)
        self._headers(pages, bodies, out)

    def _headers(self, pages: np.ndarray, bodies: np.ndarray, out: np.ndarray) -> None:
        words = out.view(np.uint32)  # magic, file id, page number (two words), CRC, body id
        words[:, 0] = _MAGIC
        words[:, 1] = self.file_id
        out.view(np.uint64)[:, 1] = pages
        words[:, 4] = self.pool_crc[bodies]
        words[:, 5] = bodies

    def expected(self, pages: np.ndarray) -> np.ndarray:
        out = np.empty((len(pages), PAGE), dtype=np.uint8)
        self.fill(pages, out)
        return out


def pages_view(buffer: mmap.mmap, length: int) -> np.ndarray:
    return np.frombuffer(buffer, dtype=np.uint8, count=length).reshape(-1, PAGE)


def mismatched_pages(
    layout: Layout, batch: mmap.mmap, offsets: np.ndarray, lengths: np.ndarray
) -> int:
    """Pages of ``batch`` that differ from the layout, where it holds the reads of ``lengths``
    bytes at ``offsets`` back to back, in that order."""
    used = int(lengths.sum())
    if used == 0:
        return 0
    counts = lengths // PAGE
    pages = np.repeat(offsets // PAGE, counts) + _ramp(counts)
    got = pages_view(batch, used)
    return int(np.any(got != layout.expected(pages.astype(np.intp)), axis=1).sum())


def _ramp(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., counts[0]-1, 0, 1, ..., counts[1]-1, ..."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


def random_plan(
    rng: np.random.Generator, size: int, count: int, sizes: tuple[int, int] = (PAGE, PAGE)
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` page-aligned (offset, length) pairs inside a file of ``size`` bytes, lengths
    log-uniform in ``sizes``."""
    low, high = sizes[0] // PAGE, max(sizes[0], min(sizes[1], size)) // PAGE
    pages = np.exp(rng.uniform(np.log(low), np.log(high + 1), count)).astype(np.int64)
    pages = np.clip(pages, low, high)
    starts = (rng.random(count) * (size // PAGE - pages + 1)).astype(np.int64)
    return starts * PAGE, pages * PAGE
