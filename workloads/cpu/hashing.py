"""cpu-4: cryptographic hashing and string processing.

Iterations rotate over five operations and ten hash functions (md5, sha1, sha2, sha3, blake2),
on sizes that grow over a cycle of iterations:

- digest: a buffer of random bytes hashed in one call and again in random-sized streaming
  chunks; both digests must agree, and the function must reproduce its known-answer vector.
- hmac: many messages of 64 B - 1 KiB authenticated with HMAC; a sample is recomputed from the
  definition H((K ^ opad) || H((K ^ ipad) || m)), and RFC 4231's vectors must hold.
- chain: a hash chain h(i+1) = H(h(i)) from a seeded start, so its end is reproducible from the
  seed (it feeds the digest); one stretch is recomputed from a saved link.
- password: iterated password hashing, PBKDF2-HMAC (up to millions of iterations) or scrypt
  (memory-hard), checked by the known-answer vectors of RFC 6070 and RFC 7914.
- strings: records formatted, case-folded and normalised as text, then deduplicated by their
  hex digests; the number of distinct digests must equal the number of distinct records drawn.

hashlib releases the GIL on large buffers, but most of this work is many small calls, so the
workers are processes, and N workers keep N cores busy.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import numpy as np

from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.rates import Rate, timed

KIB, MIB = 1 << 10, 1 << 20
# Sizes at scale 1, chosen so one iteration takes well under half a second on one core.
_BULK_BYTES = (1 * MIB, 32 * MIB)
_STREAM_CHUNK = (1, 64 * KIB)  # sizes of the streaming updates
_HMAC_MESSAGES = (4_000, 80_000)
_HMAC_MESSAGE_BYTES = (64, 1024)
_HMAC_RECOMPUTED = 16  # one message in this many is recomputed from the definition
_CHAIN_LINKS = (20_000, 400_000)
_CHAIN_SEGMENTS = 16  # links saved along the chain, to recompute a stretch from
# PBKDF2: several keys per iteration, each with as many iterations as a stored password might
# use; one call cannot be interrupted, so each stays short.
_PBKDF2_ITERATIONS = 100_000
_PBKDF2_KEYS = (1, 8)
_PBKDF2_HASHES = ("sha1", "sha256", "sha512")
_SCRYPT_LOG2_N = 14  # cost parameter N = 2^14 at scale 1 (16 MiB with r = 8)
_SCRYPT_R = 8
_SCRYPT_PARALLEL = (1, 6)  # scrypt's p: hashlib runs the p lanes one after another
_RECORDS = (4_000, 100_000)
_DISTINCT_SHARE = 0.5  # distinct records drawn, as a share of the records
_RECORD_BYTES = 400  # a record's text, its digest and their share of the set, with headroom
_CHECK_EVERY = 1 << 13  # small steps (links, messages, records) between stop checks
# Iterations per growth cycle: coprime with the rotation of operations and hash
# functions, so each combination meets every size in turn.
_GROWTH_PERIOD = 9

ALGORITHMS = (
    "md5",
    "sha1",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "sha3_256",
    "sha3_512",
    "blake2b",
    "blake2s",
)
# Each function's digest of b"abc" (RFC 1321, FIPS 180-4, FIPS 202, RFC 7693).
KNOWN_ABC = {
    "md5": "900150983cd24fb0d6963f7d28e17f72",
    "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
    "sha224": "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
    "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "sha384": "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded163"
    "1a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
    "sha512": "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    "sha3_256": "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
    "sha3_512": "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e"
    "10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0",
    "blake2b": "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
    "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
    "blake2s": "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
}
# RFC 4231, test case 2: HMAC(key "Jefe", "what do ya want for nothing?").
_HMAC_VECTORS = {
    "sha256": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    "sha512": "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
    "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
}
# (hash, password, salt, iterations, key length, derived key): RFC 6070 and RFC 7914 section 11.
_PBKDF2_VECTORS = (
    ("sha1", b"password", b"salt", 1, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6"),
    ("sha1", b"password", b"salt", 2, 20, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"),
    ("sha1", b"password", b"salt", 4096, 20, "4b007901b765489abead49d926f721d065a429c1"),
    (
        "sha256",
        b"passwd",
        b"salt",
        1,
        64,
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
    ),
)
# RFC 7914 section 12: scrypt(P="", S="", N=16, r=1, p=1, dkLen=64).
_SCRYPT_VECTOR = (
    "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
    "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"
)
_OPERATIONS = ("digest", "hmac", "chain", "password", "strings")
_BYTE_OPERATIONS = ("digest", "hmac", "chain", "strings")  # those that count bytes hashed
_FIRST_NAMES = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
_LAST_NAMES = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Perlman")
_DOMAINS = ("example.com", "example.org", "example.net")


def _constructor(name: str) -> Callable[..., Any]:
    return getattr(hashlib, name)


def known_answers_hold(name: str) -> bool:
    return _constructor(name)(b"abc").hexdigest() == KNOWN_ABC[name]


def hmac_by_definition(key: bytes, message: bytes, name: str) -> bytes:
    """HMAC written out from RFC 2104, independently of the hmac module."""
    new = _constructor(name)
    block = new().block_size
    if len(key) > block:
        key = new(key).digest()
    key = key.ljust(block, b"\0")
    inner = new(bytes(k ^ 0x36 for k in key) + message).digest()
    return new(bytes(k ^ 0x5C for k in key) + inner).digest()


def _size(iteration: Iteration, bounds: tuple[float, float], minimum: int = 1) -> int:
    low, high = (max(minimum, bound * iteration.scale) for bound in bounds)
    return max(minimum, int(iteration.grow(low, high, period=_GROWTH_PERIOD)))


# -- the operations ------------------------------------------------------------------------------
def _digest(iteration: Iteration, name: str, result: IterationResult) -> None:
    rng = iteration.rng
    size = min(_size(iteration, _BULK_BYTES, 4 * KIB), iteration.memory_budget // 4)
    result.size = size
    data = memoryview(rng.bytes(size))
    chunks = rng.integers(*_STREAM_CHUNK, endpoint=True, size=size // _STREAM_CHUNK[1] * 2 + 1)
    new = _constructor(name)
    with timed(result, "digest"), timed(result, f"digest_{name}"):
        whole = new(data).digest()
        streaming, offset = new(), 0
        for chunk in chunks.tolist():
            streaming.update(data[offset : offset + chunk])
            offset += chunk
            if offset >= size:
                break
        iteration.checkpoint()
        if offset < size:
            streaming.update(data[offset:])
    result.check(
        "streaming digest equals the one-shot digest", streaming.digest() == whole, f"{name}"
    )
    result.check("hash functions reproduce their known-answer vectors", known_answers_hold(name))
    result.add("bytes_hashed", 2 * size)
    result.add(f"bytes_{name}", 2 * size)
    result.add("hashes", 2)
    result.fingerprint_with("digest", name, size, whole)


def _hmac(iteration: Iteration, name: str, result: IterationResult) -> None:
    rng = iteration.rng
    count = _size(iteration, _HMAC_MESSAGES, 16)
    result.size = count
    key = rng.bytes(int(rng.integers(16, 129)))
    pool = rng.bytes(64 * KIB + _HMAC_MESSAGE_BYTES[1])
    lengths = rng.integers(*_HMAC_MESSAGE_BYTES, endpoint=True, size=count).tolist()
    offsets = rng.integers(0, 64 * KIB, size=count).tolist()
    macs = []
    with timed(result, "hmac"):
        for number, (offset, length) in enumerate(zip(offsets, lengths, strict=True)):
            if number % _CHECK_EVERY == 0:
                iteration.checkpoint()
            macs.append(hmac.digest(key, pool[offset : offset + length], name))
    recomputed = all(
        hmac_by_definition(key, pool[offsets[i] : offsets[i] + lengths[i]], name) == macs[i]
        for i in range(0, count, _HMAC_RECOMPUTED)
    )
    result.check("HMACs equal a recomputation from the definition", recomputed, name)
    vectors = all(
        hmac.digest(b"Jefe", b"what do ya want for nothing?", hash_name).hex() == expected
        for hash_name, expected in _HMAC_VECTORS.items()
    )
    result.check("HMAC reproduces the RFC 4231 vectors", vectors)
    result.add("bytes_hashed", sum(lengths))
    result.add("hashes", count)
    result.fingerprint_with("hmac", name, count, hashlib.sha256(b"".join(macs)).digest())


def _chain(iteration: Iteration, name: str, result: IterationResult) -> None:
    links = _size(iteration, _CHAIN_LINKS, _CHAIN_SEGMENTS)
    result.size = links
    new = _constructor(name)
    segment = links // _CHAIN_SEGMENTS
    link = iteration.rng.bytes(32)
    saved = [link]
    with timed(result, "chain"):
        for _ in range(_CHAIN_SEGMENTS):
            iteration.checkpoint()
            for _ in range(segment):
                link = new(link).digest()
            saved.append(link)
    stretch = int(iteration.rng.integers(_CHAIN_SEGMENTS))
    again = saved[stretch]
    for _ in range(segment):
        again = new(again).digest()
    result.check(
        "a stretch of the chain recomputed from a saved link reaches the next one",
        again == saved[stretch + 1],
        f"{name}, {segment * _CHAIN_SEGMENTS} links",
    )
    result.add("bytes_hashed", segment * _CHAIN_SEGMENTS * len(link))
    result.add("hashes", segment * _CHAIN_SEGMENTS)
    result.fingerprint_with("chain", name, links, link)


def _pbkdf2(iteration: Iteration, password: bytes, salt: bytes, result: IterationResult) -> None:
    """A chain of PBKDF2 derivations, each key the password of the next."""
    name = iteration.rotate(_PBKDF2_HASHES, every=2 * len(_OPERATIONS))
    iterations = max(1_000, int(_PBKDF2_ITERATIONS * iteration.scale))
    keys = int(iteration.grow(*_PBKDF2_KEYS, period=_GROWTH_PERIOD))
    result.size = keys * iterations
    for _ in range(keys):
        iteration.checkpoint()
        with timed(result, "pbkdf2"):
            password = hashlib.pbkdf2_hmac(name, password, salt, iterations)
        result.fingerprint_with("pbkdf2", name, iterations, password)
    result.add("pbkdf2_iterations", keys * iterations)
    result.add("pbkdf2_keys", keys)


def _scrypt(iteration: Iteration, password: bytes, salt: bytes, result: IterationResult) -> None:
    """One scrypt derivation: N (memory) follows the scale and the budget, p (time) grows."""
    log2_n = int(np.clip(round(_SCRYPT_LOG2_N + np.log2(iteration.scale)), 4, _SCRYPT_LOG2_N))
    memory = 128 * _SCRYPT_R * (1 << log2_n)
    while memory > iteration.memory_budget // 2 and log2_n > 4:
        log2_n, memory = log2_n - 1, memory // 2
    lanes = int(iteration.grow(*_SCRYPT_PARALLEL, period=_GROWTH_PERIOD))
    result.size = lanes << log2_n
    with timed(result, "scrypt"):
        key = hashlib.scrypt(
            password, salt=salt, n=1 << log2_n, r=_SCRYPT_R, p=lanes, maxmem=2 * memory
        )
    result.add("scrypt_keys", 1)
    result.fingerprint_with("scrypt", log2_n, lanes, key)


def password_vectors_hold() -> bool:
    pbkdf2 = all(
        hashlib.pbkdf2_hmac(h, p, s, c, length).hex() == expected
        for h, p, s, c, length, expected in _PBKDF2_VECTORS
    )
    scrypt = hashlib.scrypt(b"", salt=b"", n=16, r=1, p=1, dklen=64).hex() == _SCRYPT_VECTOR
    return pbkdf2 and scrypt


def _password(iteration: Iteration, name: str, result: IterationResult) -> None:
    rng = iteration.rng
    password, salt = rng.bytes(int(rng.integers(8, 33))), rng.bytes(16)
    derive = iteration.rotate((_pbkdf2, _scrypt), every=len(_OPERATIONS))
    derive(iteration, password, salt, result)
    result.check(
        "password hashing reproduces the RFC 6070 and RFC 7914 vectors", password_vectors_hold()
    )


def record_text(identity: int) -> str:
    """A contact record, with irregular case and spacing, that depends on ``identity`` alone."""
    first = _FIRST_NAMES[identity % len(_FIRST_NAMES)]
    last = _LAST_NAMES[identity // len(_FIRST_NAMES) % len(_LAST_NAMES)]
    domain = _DOMAINS[identity % len(_DOMAINS)]
    spacing = " " * (1 + identity % 3)
    return f"  {first.upper()}{spacing}{last}  <{first}.{last}@{domain}>{spacing}#{identity:09d} "


def normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _strings(iteration: Iteration, name: str, result: IterationResult) -> None:
    rng = iteration.rng
    count = min(_size(iteration, _RECORDS, 16), max(16, iteration.memory_budget // _RECORD_BYTES))
    result.size = count
    identities = rng.integers(0, max(1, int(count * _DISTINCT_SHARE)), count).tolist()
    new = _constructor(name)
    distinct: set[str] = set()
    hashed = 0
    with timed(result, "strings"):
        for number, identity in enumerate(identities):
            if number % _CHECK_EVERY == 0:
                iteration.checkpoint()
            text = normalise(record_text(identity)).encode()
            distinct.add(new(text).hexdigest())
            hashed += len(text)
    expected = len(set(identities))
    result.check(
        "deduplication by digest finds exactly the distinct records",
        len(distinct) == expected,
        f"{len(distinct)} distinct of {count}, expected {expected}",
    )
    result.add("bytes_hashed", hashed)
    result.add("hashes", count)
    result.fingerprint_with(
        "strings", name, count, hashlib.sha256("".join(sorted(distinct)).encode()).digest()
    )


_RUN = {
    "digest": _digest,
    "hmac": _hmac,
    "chain": _chain,
    "password": _password,
    "strings": _strings,
}


def one_iteration(iteration: Iteration) -> IterationResult:
    operation = iteration.rotate(_OPERATIONS)
    name = iteration.rotate(ALGORITHMS, every=len(_OPERATIONS))
    result = IterationResult()
    _RUN[operation](iteration, name, result)
    return result


RATES = {
    "hashed_mb_s": Rate("bytes_hashed", _BYTE_OPERATIONS, "MB/s", 1e6),
    "hashes_per_s": Rate("hashes", _BYTE_OPERATIONS, "hashes/s"),
    "pbkdf2_iterations_per_s": Rate("pbkdf2_iterations", ["pbkdf2"], "iterations/s"),
    "scrypt_keys_per_s": Rate("scrypt_keys", ["scrypt"], "keys/s"),
}


def run(ctx: Context) -> None:
    totals = ctx.run_iterations(one_iteration, rates=RATES)
    per_algorithm = {
        f"{name}_mb_s": Rate(f"bytes_{name}", [f"digest_{name}"], "MB/s", 1e6)
        for name in ALGORITHMS
        if f"bytes_{name}" in totals.work
    }
    ctx.report_rates(totals, per_algorithm)
    ctx.note("rates", "per second spent in the hashing calls, summed over workers")
