"""io-4: network-like IO with buffering, through real sockets on the loopback.

Each iteration opens a TCP connection on the loopback (a Unix socket pair where there is no
IPv4 loopback) between a producer thread and the iteration's own thread as consumer. The producer
sends packets of 64-1500 bytes (a header with magic, version, sequence number, payload length,
the payload's CRC-32 and the send time, then the payload) through a buffered writer whose size
varies, flushing after bursts of random length. The consumer receives into a buffer of varying
size, captures every byte it receives to a file (buffered, fsync at the end), and parses the
stream as it arrives, packets split across receives included. The capture is then dropped from
the page cache, read back and parsed again.

Checks: every packet arrives intact and in order (magic, version, length, sequence number,
CRC-32 of the payload), as many packets and bytes as were sent, and the capture parses to the
same packets (a running CRC-32 over sequence numbers and checksums matches the producer's).
Latency is from the moment the producer framed a packet to the moment the consumer parsed it,
so it includes the time spent in buffers. Iterations run in worker processes (the default),
each holding its own producer and consumer pair: the envelope's two CPUs then carry two
streams, where threads of one process would share one interpreter lock.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np

from workloads.io import storage
from workloads.io.storage import KIB, MIB
from workloads.runtime.context import Context
from workloads.runtime.iterations import Iteration, IterationResult
from workloads.runtime.latency import KEPT_PER_ITERATION
from workloads.runtime.rates import Rate, timed

MAGIC, VERSION = 0xCA1D, 1
# magic, version, flags, sequence, payload length, payload CRC-32, send time (ns)
HEADER = struct.Struct("!HBBIHIQ")
PACKET = (64, 1500)  # bytes on the wire, header included
_PACKETS = (20_000, 300_000)  # per iteration, at scale 1
_WRITE_BUFFER = (4 * KIB, 256 * KIB)
_RECEIVE_BUFFER = (4 * KIB, 1 * MIB)
_BURST = (1, 256)  # packets between flushes
_NOISE = (256 * KIB, 16 * MIB)  # payloads are slices of this much random data
_DISK_SHARE = 0.8
_JOIN_TIMEOUT = 2.0


@dataclass
class Stream:
    """What a parse of the stream found."""

    packets: int = 0
    bytes: int = 0
    bad: int = 0  # packets with a wrong magic, version, length, sequence number or CRC-32
    digest: int = 0  # CRC-32 over (sequence, CRC-32) of the good packets, in order
    latencies_us: list[float] = field(default_factory=list)


def _chain(digest: int, sequence: int, crc: int) -> int:
    """The running CRC-32 over (sequence number, payload CRC-32) of packets, in order."""
    return zlib.crc32(sequence.to_bytes(4, "big") + crc.to_bytes(4, "big"), digest)


class Parser:
    """Parses packets out of a byte stream fed in pieces of any size."""

    def __init__(self, stream: Stream, *, sample_every: int = 0) -> None:
        self.stream = stream
        self.pending = bytearray()
        self.expected = 0
        self.broken = False  # a wrong header: framing is lost, the rest cannot be parsed
        self.sample_every = sample_every  # keep every n-th latency (0: none)

    def feed(self, data: bytes | memoryview) -> None:
        if self.broken:
            return
        self.pending += data
        view, offset, end = memoryview(self.pending), 0, len(self.pending)
        stream, now = self.stream, time.perf_counter_ns()
        try:
            while end - offset >= HEADER.size:
                magic, version, _, sequence, length, crc, sent = HEADER.unpack_from(view, offset)
                if magic != MAGIC or version != VERSION or length > PACKET[1]:
                    stream.bad += 1
                    self.broken = True
                    break
                stop = offset + HEADER.size + length
                if stop > end:
                    break
                intact = zlib.crc32(view[offset + HEADER.size : stop]) == crc
                if sequence == self.expected and intact:
                    stream.digest = _chain(stream.digest, sequence, crc)
                else:
                    stream.bad += 1
                self.expected = sequence + 1
                stream.packets += 1
                stream.bytes += stop - offset
                if self.sample_every and sequence % self.sample_every == 0:
                    stream.latencies_us.append((now - sent) / 1e3)
                offset = stop
        finally:
            view.release()
        del self.pending[:offset]

    def finish(self) -> None:
        """A stream that ends inside a packet lost its tail."""
        if self.pending and not self.broken:
            self.stream.bad += 1


# -- producer ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    packets: int
    write_buffer: int
    receive_buffer: int
    noise: int


class Producer(threading.Thread):
    """Sends ``plan.packets`` packets through a buffered writer, flushing after bursts."""

    def __init__(self, connection: socket.socket, plan: Plan, rng: np.random.Generator) -> None:
        super().__init__(name="io4-producer", daemon=True)
        self.connection, self.plan = connection, plan
        self.sizes = rng.integers(PACKET[0], PACKET[1] + 1, plan.packets) - HEADER.size
        self.offsets = (rng.random(plan.packets) * (plan.noise - self.sizes)).astype(np.int64)
        self.bursts = rng.integers(_BURST[0], _BURST[1] + 1, plan.packets // _BURST[0] + 1)
        self.noise = rng.bytes(plan.noise)
        self.stopping = threading.Event()
        self.sent = Stream()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.connection.makefile("wb", buffering=self.plan.write_buffer) as writer:
                self._send(writer)
            self.connection.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError) as error:
            if not self.stopping.is_set():
                self.error = error
        except BaseException as error:  # reported by the consumer's thread
            self.error = error

    def _send(self, writer: object) -> None:
        write, flush = writer.write, writer.flush  # type: ignore[attr-defined]
        sent, noise, clock = self.sent, self.noise, time.perf_counter_ns
        bursts, left = iter(self.bursts.tolist()), 0
        for sequence, (size, offset) in enumerate(
            zip(self.sizes.tolist(), self.offsets.tolist(), strict=True)
        ):
            if left == 0:
                if sequence and self.stopping.is_set():
                    return
                left = next(bursts)
            payload = noise[offset : offset + size]
            crc = zlib.crc32(payload)
            write(HEADER.pack(MAGIC, VERSION, 0, sequence, size, crc, clock()))
            write(payload)
            sent.digest = _chain(sent.digest, sequence, crc)
            sent.packets += 1
            sent.bytes += HEADER.size + size
            left -= 1
            if left == 0:
                flush()


# -- transport --------------------------------------------------------------------------------
def loopback_available() -> bool:
    """Whether a TCP connection on 127.0.0.1 can be made here (some sandboxes have none)."""
    try:
        with (
            socket.create_server(("127.0.0.1", 0)) as server,
            socket.create_connection(server.getsockname(), timeout=2),
        ):
            return True
    except OSError:
        return False


def connect(tcp: bool) -> tuple[socket.socket, socket.socket]:
    """(producer's end, consumer's end) of a TCP loopback connection or a Unix socket pair."""
    if not tcp:
        return socket.socketpair()
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        receiver, _ = server.accept()
    for end in (sender, receiver):
        end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sender, receiver


# -- consumer: one iteration ------------------------------------------------------------------
def _plan(iteration: Iteration) -> Plan:
    packets = iteration.grow(_PACKETS[0] * iteration.scale, _PACKETS[1] * iteration.scale)
    if iteration.disk_budget:
        packets = min(packets, iteration.disk_budget * _DISK_SHARE / np.mean(PACKET))
    noise = min(iteration.grow(*_NOISE), iteration.memory_budget / 4)
    return Plan(
        packets=max(100, int(packets)),
        write_buffer=int(iteration.grow(*_WRITE_BUFFER)),
        receive_buffer=int(iteration.grow(*_RECEIVE_BUFFER)),
        noise=max(PACKET[1] * 4, int(noise)),
    )


def _receive(
    iteration: Iteration, receiver: socket.socket, capture: BinaryIO, plan: Plan, live: Parser
) -> None:
    """Receive until the producer closes, capturing and parsing as the bytes arrive."""
    buffer = bytearray(plan.receive_buffer)
    view = memoryview(buffer)
    while count := receiver.recv_into(buffer):
        capture.write(view[:count])
        live.feed(view[:count])
        iteration.checkpoint()
    live.finish()


def _reparse(path: Path, chunk: int, result: IterationResult) -> Stream:
    stream = Stream()
    parser = Parser(stream)
    with timed(result, "reparse"):
        with path.open("rb", buffering=0) as handle:
            while data := handle.read(chunk):
                parser.feed(data)
                result.add("bytes_read", len(data))
            storage.drop_cache(handle.fileno())
        parser.finish()
    return stream


def one_iteration(iteration: Iteration, tcp: bool = True) -> IterationResult:
    plan = _plan(iteration)
    result = IterationResult(size=plan.packets)
    with iteration.folder() as folder:
        sent, live, replay = _exchange(iteration, plan, folder / "capture.bin", tcp, result)
    _record(result, sent, live, replay)
    return result


def _exchange(
    iteration: Iteration, plan: Plan, path: Path, tcp: bool, result: IterationResult
) -> tuple[Stream, Stream, Stream]:
    """The producer's packets through the connection into a capture at ``path``, parsed live
    and again from the capture: (sent, received live, reparsed)."""
    sender, receiver = connect(tcp)
    producer = Producer(sender, plan, iteration.rng)
    live = Parser(Stream(), sample_every=-(-plan.packets // KEPT_PER_ITERATION))
    capture = path.open("wb", buffering=plan.receive_buffer)
    try:
        with timed(result, "transfer"):
            producer.start()
            _receive(iteration, receiver, capture, plan, live)
            producer.join(_JOIN_TIMEOUT)
        if producer.error is not None:
            raise producer.error
        capture.flush()
        os.fsync(capture.fileno())
        storage.drop_cache(capture.fileno())
        replay = _reparse(path, plan.receive_buffer, result)
    finally:
        producer.stopping.set()
        with contextlib.suppress(OSError):
            receiver.shutdown(socket.SHUT_RDWR)
        receiver.close()
        producer.join(_JOIN_TIMEOUT)
        sender.close()
        with contextlib.suppress(OSError):  # a full disk was raised already
            capture.close()
    return producer.sent, live.stream, replay


def _record(result: IterationResult, sent: Stream, live: Stream, replay: Stream) -> None:
    result.add("messages", live.packets)
    result.add("message_bytes", live.bytes)
    result.add("bytes_written", live.bytes)  # the capture
    result.record_latencies("message", live.latencies_us)
    result.check(
        "every packet arrived intact and in order",
        live.bad == 0,
        f"{live.bad} of {live.packets} packets damaged or out of order",
    )
    result.check(
        "as many packets and bytes arrived as were sent",
        (live.packets, live.bytes, live.digest) == (sent.packets, sent.bytes, sent.digest),
        f"{live.packets} of {sent.packets} packets, {live.bytes} of {sent.bytes} bytes",
    )
    result.check(
        "the capture parses to the same packets",
        (replay.packets, replay.bytes, replay.digest, replay.bad)
        == (sent.packets, sent.bytes, sent.digest, 0),
        f"{replay.packets} packets, {replay.bad} damaged",
    )
    result.fingerprint_with(sent.packets, sent.bytes, sent.digest)


RATES = {
    "messages_per_s": Rate("messages", ["transfer"], "messages/s"),
    "transfer_mb_s": Rate("message_bytes", ["transfer"], "MB/s", 1e6),
    "capture_reparse_mb_s": Rate("bytes_read", ["reparse"], "MB/s", 1e6),
}


def run(ctx: Context) -> None:
    tcp = loopback_available()
    transport = "TCP on 127.0.0.1" if tcp else "Unix socket pair (no IPv4 loopback)"
    storage_run = storage.run_on_storage(
        ctx,
        partial(one_iteration, tcp=tcp),
        buffered="buffered capture, fsync",
        notes={"transport": transport},
        rates=RATES,
    )
    ctx.report_latencies(storage_run.totals, "message")
    storage_run.report_bytes(ctx)
