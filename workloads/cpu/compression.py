"""cpu-7: compression algorithms and data encoding.

Iterations rotate over eleven codecs (zlib at levels 1, 6 and 9, bz2, lzma at presets 0 and 6,
base64, hex, and streaming zlib, bz2 and lzma fed in chunks of random size) and five kinds of
data of very different compressibility (random bytes, Zipf-distributed text, telemetry records,
sparse bytes, and a block repeated with mutations). Sizes grow over a cycle of iterations; each
codec's largest size at scale 1 is chosen from its speed on its slowest kind of data, so an
iteration stays well under half a second.

Every round trip must give back the original bytes, and encodings must have their closed-form
lengths (4 ceil(n / 3) for base64, 2 n for hex). The fingerprint takes the input's CRC and the
round trip's, not the compressed bytes, so the digest does not depend on the zlib, bz2 or
liblzma build.
"""

from __future__ import annotations

import base64
import bz2
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, timed

KIB, MIB = 1 << 10, 1 << 20
_STREAM_CHUNK = (16 * KIB, 256 * KIB)
_COPIES = 5  # input, output and round trip held at once (hex output is twice the input)
# Compressor memory of lzma's presets (xz's documentation), to pick one that fits the budget.
_LZMA_MEMORY = {0: 3 * MIB, 1: 9 * MIB, 2: 17 * MIB, 3: 32 * MIB, 6: 94 * MIB}
_GROWTH_PERIOD = 9  # coprime with the codecs and kinds of data: each pair meets every size
_TEXT_PIECE = MIB  # text is generated a piece at a time, to bound the index arrays
_VOCABULARY = 2_000
_BLOCK = 4 * KIB  # the repeated block of "repetitive" data
_MUTATED = 0.001  # share of its bytes changed
_SPARSE = 0.03  # share of non-zero bytes in "sparse" data


# -- data of varied compressibility --------------------------------------------------------------
def _random(rng: np.random.Generator, size: int) -> bytes:
    return rng.bytes(size)


def _text(rng: np.random.Generator, size: int) -> bytes:
    """Words of 2-10 letters, drawn with Zipf frequencies (rank r with weight 1 / r)."""
    lengths = rng.integers(2, 11, _VOCABULARY)
    letters = rng.integers(ord("a"), ord("z") + 1, int(lengths.sum()), dtype=np.uint8)
    words = np.split(letters, np.cumsum(lengths)[:-1])
    flat = np.concatenate([np.append(word, np.uint8(ord(" "))) for word in words])
    offsets = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
    weights = 1.0 / np.arange(1, _VOCABULARY + 1)
    weights /= weights.sum()
    pieces, made = [], 0
    while made < size:
        chosen = rng.choice(_VOCABULARY, _TEXT_PIECE // 7, p=weights)  # about 7 bytes a word
        sizes = lengths[chosen] + 1
        starts = np.repeat(offsets[chosen] - (np.cumsum(sizes) - sizes), sizes)
        piece = flat[starts + np.arange(len(starts))][: size - made]
        pieces.append(piece.tobytes())
        made += len(piece)
    return b"".join(pieces)


def _telemetry(rng: np.random.Generator, size: int) -> bytes:
    """Records of (timestamp, sensor, reading): rising times, few sensors, a noisy signal."""
    layout = np.dtype([("time", "<i8"), ("sensor", "<i4"), ("reading", "<f4")])
    count = size // layout.itemsize + 1
    records = np.zeros(count, layout)
    records["time"] = 1_700_000_000_000 + np.cumsum(rng.integers(0, 20, count))
    records["sensor"] = rng.integers(0, 64, count)
    signal = np.sin(np.arange(count) / 500.0) + rng.normal(0, 0.01, count)
    records["reading"] = signal.astype(np.float32)
    return records.tobytes()[:size]


def _sparse(rng: np.random.Generator, size: int) -> bytes:
    data = np.zeros(size, np.uint8)
    count = int(size * _SPARSE)
    data[rng.integers(0, size, count)] = rng.integers(1, 256, count, dtype=np.uint8)
    return data.tobytes()


def _repetitive(rng: np.random.Generator, size: int) -> bytes:
    data = np.tile(np.frombuffer(rng.bytes(_BLOCK), np.uint8), size // _BLOCK + 1)[:size]
    count = int(size * _MUTATED)
    data[rng.integers(0, size, count)] = rng.integers(0, 256, count, dtype=np.uint8)
    return data.tobytes()


KINDS: dict[str, Callable[[np.random.Generator, int], bytes]] = {
    "random": _random,
    "text": _text,
    "telemetry": _telemetry,
    "sparse": _sparse,
    "repetitive": _repetitive,
}


# -- codecs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Codec:
    name: str
    family: str  # "compress", "encode" or "stream"
    largest: int  # bytes of input at scale 1
    level: int = 0  # zlib level, bz2 compresslevel or lzma preset


CODECS = (
    Codec("zlib-1", "compress", 8 * MIB, 1),
    Codec("zlib-6", "compress", 6 * MIB, 6),
    Codec("zlib-9", "compress", 512 * KIB, 9),  # level 9 crawls on records (about 2 MB/s)
    Codec("bz2-9", "compress", 2 * MIB, 9),
    Codec("lzma-0", "compress", 2 * MIB, 0),
    Codec("lzma-6", "compress", 384 * KIB, 6),
    Codec("base64", "encode", 24 * MIB),
    Codec("hex", "encode", 24 * MIB),
    Codec("stream-zlib", "stream", 6 * MIB, 6),
    Codec("stream-bz2", "stream", 2 * MIB, 9),
    Codec("stream-lzma", "stream", 1 * MIB, 1),
)
_SMALLEST = 16  # the smallest size is the largest divided by this


def lzma_preset(wanted: int, budget: int) -> int:
    """The largest lzma preset up to ``wanted`` whose compressor takes at most half the budget."""
    fitting = [p for p, memory in _LZMA_MEMORY.items() if p <= wanted and memory <= budget // 2]
    return max(fitting, default=0)


def _compressor(codec: Codec, budget: int) -> tuple[Any, Callable[[], Any]]:
    """A streaming (compressor, decompressor factory) pair for a codec."""
    kind = codec.name.split("-")[-1]
    if kind == "zlib":
        return zlib.compressobj(codec.level), zlib.decompressobj
    if kind == "bz2":
        return bz2.BZ2Compressor(codec.level), bz2.BZ2Decompressor
    return lzma.LZMACompressor(preset=lzma_preset(codec.level, budget)), lzma.LZMADecompressor


def _one_shot(codec: Codec, budget: int) -> tuple[Callable[[bytes], bytes], Callable]:
    family = codec.name.split("-")[0]
    if family == "zlib":
        return (lambda data: zlib.compress(data, codec.level)), zlib.decompress
    if family == "bz2":
        return (lambda data: bz2.compress(data, codec.level)), bz2.decompress
    if family == "lzma":
        preset = lzma_preset(codec.level, budget)
        return (lambda data: lzma.compress(data, preset=preset)), lzma.decompress
    if family == "base64":
        return base64.b64encode, base64.b64decode
    return bytes.hex, bytes.fromhex


def encoded_length(codec: Codec, size: int) -> int:
    return 4 * -(-size // 3) if codec.name == "base64" else 2 * size


# -- one iteration -----------------------------------------------------------------------------
def _round_trip(codec: Codec, iteration: Iteration, data: bytes, result: IterationResult) -> bytes:
    compress, decompress = _one_shot(codec, iteration.memory_budget)
    timer = "encode" if codec.family == "encode" else "compress"
    with timed(result, timer), timed(result, f"{timer}_{codec.name}"):
        packed = compress(data)
    iteration.checkpoint()
    with timed(result, "decode" if codec.family == "encode" else "decompress"):
        restored = decompress(packed)
    if codec.family == "encode":
        result.check(
            "encodings have their closed-form lengths",
            len(packed) == encoded_length(codec, len(data)),
            f"{codec.name}: {len(packed)} bytes for {len(data)}",
        )
    result.add(f"out_{codec.name}", len(packed))
    return restored


def _stream(codec: Codec, iteration: Iteration, data: bytes, result: IterationResult) -> bytes:
    rng = iteration.rng
    compressor, decompressor_factory = _compressor(codec, iteration.memory_budget)
    view, packed, offset = memoryview(data), [], 0
    chunks = rng.integers(*_STREAM_CHUNK, size=len(data) // _STREAM_CHUNK[0] + 1).tolist()
    with timed(result, "compress"), timed(result, f"compress_{codec.name}"):
        for chunk in chunks:
            iteration.checkpoint()
            packed.append(compressor.compress(view[offset : offset + chunk]))
            offset += chunk
            if offset >= len(data):
                break
        packed.append(compressor.flush())
    decompressor, restored = decompressor_factory(), []
    with timed(result, "decompress"):
        for piece in packed:
            iteration.checkpoint()
            restored.append(decompressor.decompress(piece))
    result.add(f"out_{codec.name}", sum(map(len, packed)))
    return b"".join(restored)


def _size(iteration: Iteration, codec: Codec) -> int:
    high = codec.largest * iteration.scale
    low = high / _SMALLEST
    budget_cap = iteration.memory_budget
    if codec.name.startswith(("lzma", "stream-lzma")):
        budget_cap -= _LZMA_MEMORY[lzma_preset(codec.level, iteration.memory_budget)]
    high = min(high, max(KIB, budget_cap / _COPIES))
    return max(256, int(iteration.grow(min(low, high), high, period=_GROWTH_PERIOD)))


def one_iteration(iteration: Iteration) -> IterationResult:
    codec = iteration.rotate(CODECS)
    kind = iteration.rotate(tuple(KINDS), every=len(CODECS))
    size = _size(iteration, codec)
    result = IterationResult(size=size)
    data = KINDS[kind](iteration.rng, size)
    iteration.checkpoint()
    if codec.family == "stream":
        restored = _stream(codec, iteration, data, result)
    else:
        restored = _round_trip(codec, iteration, data, result)
    result.check(
        "round trips give back the original bytes",
        restored == data,
        f"{codec.name} on {kind}, {size} bytes",
    )
    family = "encoded" if codec.family == "encode" else "compressed"
    result.add(f"bytes_{family}", size)
    result.add(f"in_{codec.name}", size)
    result.fingerprint_with(codec.name, kind, size, zlib.crc32(data), zlib.crc32(restored))
    return result


RATES = {
    "compress_mb_s": Rate("bytes_compressed", ["compress"], "MB/s", 1e6),
    "decompress_mb_s": Rate("bytes_compressed", ["decompress"], "MB/s", 1e6),
    "encode_mb_s": Rate("bytes_encoded", ["encode"], "MB/s", 1e6),
    "decode_mb_s": Rate("bytes_encoded", ["decode"], "MB/s", 1e6),
}


def run(ctx: Context) -> None:
    totals = ctx.run_iterations(one_iteration, rates=RATES)
    work = totals.work
    for codec in CODECS:
        if work.get(f"in_{codec.name}"):
            timer = "encode" if codec.family == "encode" else "compress"
            own = Rate(f"in_{codec.name}", [f"{timer}_{codec.name}"], "MB/s", 1e6)
            ctx.report_rates(totals, {f"{codec.name}_mb_s": own})
            ratio = work[f"out_{codec.name}"] / work[f"in_{codec.name}"]
            ctx.metric(f"{codec.name}_ratio", ratio, "output/input")
    ctx.note("rates", "input bytes per second spent in the codec calls, summed over workers")
