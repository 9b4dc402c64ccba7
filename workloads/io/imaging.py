"""io-5: image and binary data processing with compression (Pillow, zlib, bz2, lzma).

Each iteration synthesises a few RGB images (gradients, shapes, sensor-like noise) whose size
grows and shrinks with the iterations, and for each one:

1. encodes it as PNG (lossless) and JPEG with Pillow, writes both files durably (fsync), drops
   them from the page cache, reads them back and decodes them;
2. processes it: a half-size Lanczos resize, a Gaussian blur, a sharpen and an edge filter,
   and writes the result as PNG, read back the same way;
3. streams the raw pixels together with a binary blob (a header, sensor-like records and a
   random tail) through a compressor (gzip, bz2 or lzma, in turn) into a file, chunk by chunk
   as it would arrive, then streams the file back through the decompressor.

Checks: the PNG round trips (original and processed) equal the pixels they were made from; the
JPEG one is within a PSNR floor; the resize has the expected size and keeps the mean brightness;
the decompressed stream has the SHA-256 of the original bytes. Images are encoded and decoded
in memory, so their file IO is timed on its own (file MB/s); streams are timed whole, codec
included (stream MB/s); the primary metric is the input processed per second of iteration.
Iterations run in worker processes (the default): they share nothing, and the codecs are
CPU-bound.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from workloads.io import storage
from workloads.io.storage import KIB, MIB
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, timed

_SIDE = (384, 2048)  # image width at scale 1 (height 3/4 of it)
_IMAGES = (2, 5)
_JPEG_QUALITY = 85
_PSNR_FLOOR = 25.0  # dB: JPEG at this quality on these images (64 px and up) gives 26-40
_BLOB = (64 * KIB, 4 * MIB)  # binary data streamed with each image, at scale 1
_STREAM_CHUNK = 256 * KIB
_MEMORY_SHARE = 0.6  # of the memory budget for an image and its copies (about 8 of them)
_DISK_SHARE = 0.8  # of the disk budget for one image's files (about 3x its raw size)


def _gzip() -> Any:
    return zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip format


def _gunzip() -> Any:
    return zlib.decompressobj(31)


# name -> (compressor factory, decompressor factory)
CODECS: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    "gzip": (_gzip, _gunzip),
    "bz2": (lambda: bz2.BZ2Compressor(5), bz2.BZ2Decompressor),
    "lzma": (lambda: lzma.LZMACompressor(preset=1), lzma.LZMADecompressor),
}


# -- data -------------------------------------------------------------------------------------
def synthesise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """An RGB photo-like image: smooth gradients, a few filled shapes, sensor noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [x / width * 200 + 20, y / height * 180 + 40, (x + y) / (width + height) * 160 + 50],
        axis=-1,
    )
    for _ in range(int(rng.integers(3, 8))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.05, 0.3) * min(width, height)
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        if rng.random() < 0.5:
            inside = (x - cx) ** 2 + (y - cy) ** 2 < radius**2
        else:
            inside = (abs(x - cx) < radius) & (abs(y - cy) < radius * 0.6)
        image[inside] = image[inside] * 0.3 + colour * 0.7
    image += rng.normal(0, 4, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def binary_blob(rng: np.random.Generator, size: int) -> bytes:
    """Mixed binary data: a header, sensor-like records (sequential ids, rising timestamps, a
    random walk, small flags) that compress well, and a tail of random bytes that does not."""
    records = np.zeros(
        max(1, size * 7 // 8 // 17),
        dtype=[("id", "<u4"), ("time", "<u8"), ("value", "<f4"), ("flags", "u1")],
    )
    records["id"] = np.arange(len(records))
    records["time"] = 1_700_000_000_000 + np.cumsum(rng.integers(900, 1100, len(records)))
    records["value"] = np.cumsum(rng.normal(0, 0.01, len(records)))
    records["flags"] = rng.integers(0, 4, len(records))
    header = b"CLOUDAI-BLOB\x00\x01" + len(records).to_bytes(8, "little")
    body = header + records.tobytes()
    return body + rng.bytes(max(0, size - len(body)))


def psnr(original: np.ndarray, decoded: np.ndarray) -> float:
    error = np.mean((original.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))


# -- file IO ----------------------------------------------------------------------------------
def _read(path: Path, result: IterationResult) -> bytes:
    with timed(result, "read"), path.open("rb", buffering=0) as handle:
        data = handle.read()
        storage.drop_cache(handle.fileno())
    result.add("file_bytes_read", len(data))
    result.add("bytes_read", len(data))
    return data


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _round_trip(
    path: Path, image: Image.Image, fmt: str, result: IterationResult, **options: Any
) -> np.ndarray:
    """Encode, write, read back and decode; returns the decoded pixels."""
    encoded = _encode(image, fmt, **options)
    result.add(f"{path.stem.split('-')[0]}_{fmt.lower()}_bytes", len(encoded))
    # file_bytes_written: the image files alone (file MB/s); bytes_written: streams too.
    storage.write_durably(
        path, encoded, result, byte_counters=("file_bytes_written", "bytes_written")
    )
    with Image.open(io.BytesIO(_read(path, result))) as decoded:
        return np.asarray(decoded.convert(image.mode))


def stream_compress(path: Path, data: bytes, codec: str, result: IterationResult) -> int:
    """Compress ``data`` chunk by chunk into ``path`` (fsync at the end); returns its size."""
    compressor = CODECS[codec][0]()
    view, written = memoryview(data), 0
    with timed(result, "stream"), storage.durable_file(path) as descriptor:
        for offset in range(0, len(view), _STREAM_CHUNK):
            written += storage.write_all(
                descriptor, compressor.compress(view[offset : offset + _STREAM_CHUNK])
            )
        written += storage.write_all(descriptor, compressor.flush())
    result.add("bytes_written", written)
    return written


def stream_decompress(path: Path, codec: str, result: IterationResult) -> tuple[bytes, int]:
    """Decompress ``path`` chunk by chunk; returns the SHA-256 and length of the output."""
    decompressor, digest, length = CODECS[codec][1](), hashlib.sha256(), 0
    with timed(result, "stream"), path.open("rb", buffering=0) as handle:
        while chunk := handle.read(_STREAM_CHUNK):
            result.add("bytes_read", len(chunk))
            output = decompressor.decompress(chunk)
            digest.update(output)
            length += len(output)
        storage.drop_cache(handle.fileno())
    return digest.digest(), length


# -- one iteration ----------------------------------------------------------------------------
def _plan(iteration: Iteration) -> tuple[int, int, int, int]:
    """(images, width, height, blob bytes), within the memory and disk budgets."""
    images = int(iteration.rng.integers(_IMAGES[0], _IMAGES[1] + 1))
    side = iteration.scale**0.5
    width = iteration.grow(_SIDE[0] * side, _SIDE[1] * side)
    room = iteration.memory_budget * _MEMORY_SHARE / 8
    if iteration.disk_budget:
        room = min(room, iteration.disk_budget * _DISK_SHARE / 3)
    width = min(width, (room / 3 / 0.75) ** 0.5)  # 3 bytes a pixel, height 3/4 of the width
    width = max(64, int(width) // 8 * 8)
    blob = int(
        min(iteration.grow(_BLOB[0] * iteration.scale, _BLOB[1] * iteration.scale), room / 2)
    )
    return images, width, width * 3 // 4, max(KIB, blob)


def _process(image: Image.Image) -> Image.Image:
    half = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    blurred = half.filter(ImageFilter.GaussianBlur(2))
    return blurred.filter(ImageFilter.SHARPEN).filter(ImageFilter.FIND_EDGES)


def _one_image(
    iteration: Iteration,
    folder: Path,
    number: int,
    plan: tuple[int, int, int, int],
    result: IterationResult,
) -> dict[str, Any]:
    """One image's round trips, processing and stream, in files in ``folder``."""
    _, width, height, blob_size = plan
    pixels = synthesise(iteration.rng, width, height)
    image = Image.fromarray(pixels, "RGB")
    raw = pixels.tobytes()
    result.add("input_bytes", len(raw))
    result.add("image_bytes", len(raw))

    png = _round_trip(folder / f"image-{number}.png", image, "PNG", result, compress_level=6)
    jpeg = _round_trip(folder / f"image-{number}.jpg", image, "JPEG", result, quality=_JPEG_QUALITY)
    processed = _process(image)
    back = _round_trip(folder / f"processed-{number}.png", processed, "PNG", result)
    half = image.resize(processed.size, Image.Resampling.LANCZOS)

    blob = binary_blob(iteration.rng, blob_size)
    stream = raw + blob
    codec = tuple(CODECS)[(iteration.index + number) % len(CODECS)]
    compressed = stream_compress(folder / f"stream-{number}.{codec}", stream, codec, result)
    digest, length = stream_decompress(folder / f"stream-{number}.{codec}", codec, result)
    result.add("input_bytes", len(blob))
    result.add(f"{codec}_in", len(stream))
    result.add("stream_in", len(stream) * 2)  # compressed, then decompressed
    result.add(f"{codec}_out", compressed)
    result.fingerprint_with(hashlib.sha256(raw).digest(), hashlib.sha256(blob).digest(), codec)
    return {
        "png": np.array_equal(png, pixels),
        "jpeg": psnr(pixels, jpeg),
        "processed": np.array_equal(back, np.asarray(processed)),
        "resize": processed.size == (width // 2, height // 2)
        and abs(float(np.asarray(half).mean()) - float(pixels.mean())) < 2.0,
        "stream": (digest, length) == (hashlib.sha256(stream).digest(), len(stream)),
    }


def one_iteration(iteration: Iteration) -> IterationResult:
    plan = _plan(iteration)
    images = plan[0]
    result = IterationResult(size=images * plan[1] * plan[2] * 3)
    outcomes = []
    with iteration.folder() as folder, timed(result, "process"):
        for number in range(images):
            iteration.checkpoint()
            outcomes.append(_one_image(iteration, folder, number, plan, result))
            for path in folder.iterdir():  # the next image's files take their place
                path.unlink()
    worst = min(outcome["jpeg"] for outcome in outcomes)
    for key, label in (
        ("png", "PNG round trips equal the original pixels"),
        ("processed", "processed images read back equal to what was written"),
        ("resize", "resizes have the expected size and keep the mean brightness"),
        ("stream", "decompressed streams equal the original bytes (SHA-256)"),
    ):
        failed = sum(not outcome[key] for outcome in outcomes)
        result.check(label, failed == 0, f"{failed} of {images} images differ")
    result.check(
        f"JPEG round trips stay above {_PSNR_FLOOR:g} dB PSNR",
        worst >= _PSNR_FLOOR,
        f"lowest {worst:.1f} dB",
    )
    return result


def run(ctx: Context) -> None:
    rates = {
        "input_mb_s": Rate("input_bytes", ["process"], "MB/s", 1e6),
        "file_write_mb_s": Rate("file_bytes_written", ["write"], "MB/s", 1e6),
        "file_read_mb_s": Rate("file_bytes_read", ["read"], "MB/s", 1e6),
        "stream_mb_s": Rate("stream_in", ["stream"], "MB/s", 1e6),
    }
    storage_run = storage.run_on_storage(ctx, one_iteration, rates=rates)
    work = storage_run.totals.work
    ratios = {codec: (f"{codec}_in", f"{codec}_out") for codec in CODECS}
    ratios |= {fmt: ("image_bytes", f"image_{fmt}_bytes") for fmt in ("png", "jpeg")}
    for name, (before, after) in ratios.items():
        if work.get(after):
            ctx.metric(f"{name}_compression_ratio", work[before] / work[after], "x")
    storage_run.report_bytes(ctx)
