"""Node-to-node frames over Redis Streams: one inbox stream per node, one consumer group.

Each node reads ``{prefix}:inbox:<node>`` as consumer ``<node>`` of the group ``{prefix}:g`` and
hands every batch to ``on_frames``. Delivery is at-least-once: the node calls :meth:`ack` only
after it handled a frame; an acked entry is also deleted (``XACK`` + ``XDEL``), so a stream holds
only what is undelivered or unacked and never needs trimming. Frames from one sender to one
destination arrive in the order sent. Duplicates are possible after a connection breaks in the
middle of a flush (the whole batch is retried) or when a survivor claims a dead node's entries;
effects are made idempotent by message ids upstream.

Sending is synchronous and buffered: :meth:`StreamTransport.send` appends to a per-destination
buffer and wakes the sender task, which writes everything buffered, for every destination and
with the pending acks, in one pipeline. Frames go in a Lua script appending up to 1,000 of them
per call rather than one ``XADD`` each: coredis spends ~100 us of Python on every command, so
per-frame commands capped a flush at ~13k frames/s, the script reaches ~90-120k.

Frames accepted but not yet written (buffered or in an unfinished flush) are bounded by
``max_buffered_frames``: above it ``send`` raises :class:`TransportBackpressure` and
:meth:`StreamTransport.send_wait` waits for room. While Redis is unreachable the sender keeps the
frames and retries the same batch (``RedisLink.call``); frames Redis refuses with an error reply
(e.g. OOM) go back to the front of their buffer and are retried with backoff.

After a Redis restart (no persistence) the group is gone: the receiver catches ``NOGROUP`` and
re-creates it from ID ``0``, so entries that senders wrote to the re-created stream before that are
still delivered. On start, and after any failed read, the receiver first re-reads its own pending
entries past the last one it handed out (a reply lost in transit leaves them pending for it).

When a node dies, a survivor calls :meth:`StreamTransport.claim_dead` to take over its unacked and
never-delivered entries, re-routes them, acks them on the dead stream, then
:meth:`StreamTransport.drop_stream`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar, cast, overload

import attrs
import coredis
import structlog
import trio
from coredis.exceptions import (
    ResponseError,
    StreamConsumerGroupError,
    StreamDuplicateConsumerGroupError,
)
from coredis.response.types import StreamEntry

from tektree._codec import decode_envelope
from tektree._envelope import Envelope
from tektree._errors import CodecError
from tektree._pool import backoff_delay
from tektree.cluster._redis import RedisLink

__all__ = ["Inbound", "StreamTransport", "TransportBackpressure", "TransportStatistics"]

T = TypeVar("T")

_log = structlog.get_logger("tektree.cluster.transport")

FIELD = b"f"
"""The one field of an entry: the frame."""

XADD_CHUNK = 1000
"""Frames appended per script call (a call holds Redis for ~1 ms per 1,000 frames)."""

_XADD_MANY = """
for i = 1, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'f', ARGV[i])
end
return #ARGV
"""
"""One command for many frames: coredis spends ~100 us of Python per command, Redis ~1 us per
XADD. KEYS: the inbox. ARGV: the frames, in order."""

_DROP_IF_DRAINED = """
if ARGV[1] == '1' or redis.call('XLEN', KEYS[1]) == 0 then
  return redis.call('DEL', KEYS[1])
end
return -1
"""


class Inbound(NamedTuple):
    """One received entry. A NamedTuple, not attrs: one is built per frame on the hot path."""

    stream: str
    entry_id: bytes
    frame: bytes


class TransportBackpressure(Exception):
    """``send`` refused a frame: ``buffered`` frames already wait, the bound is ``limit``."""

    def __init__(self, dest: str, buffered: int, limit: int) -> None:
        super().__init__(
            f"cannot send to {dest!r}: {buffered} frames wait to be written and the bound is "
            f"{limit} (max_buffered_frames); await send_wait(...) to wait for room, or shed load"
        )
        self.dest = dest
        self.buffered = buffered
        self.limit = limit


@attrs.frozen(kw_only=True)
class TransportStatistics:
    """A snapshot of :meth:`StreamTransport.statistics`."""

    sent: int
    buffered: int
    flushes: int
    send_errors: int
    received: int
    acked: int
    malformed: int
    claimed: int
    groups_created: int


class StreamTransport:
    """This node's inbox reader and its buffered, pipelined writer to other nodes' inboxes."""

    def __init__(
        self,
        link: RedisLink,
        *,
        node: str,
        on_frames: Callable[[list[Inbound]], None],
        batch_max: int = 256,
        block_ms: int = 1000,
        max_buffered_frames: int = 50_000,
    ) -> None:
        if batch_max < 1 or block_ms < 1 or max_buffered_frames < 1:
            raise ValueError(
                f"batch_max ({batch_max}), block_ms ({block_ms}) and max_buffered_frames "
                f"({max_buffered_frames}) must all be >= 1"
            )
        self._link = link
        self._keys: dict[str, str] = {}
        self.node = node
        self.group = link.key("g")
        self.inbox = self.inbox_of(node)
        self._inbox_b = self.inbox.encode()
        self._on_frames = on_frames
        self.batch_max = batch_max
        self.block_ms = block_ms
        self.max_buffered_frames = max_buffered_frames
        self._out: dict[str, list[bytes]] = {}
        self._acks: dict[str, list[bytes]] = {}
        self._pending = 0  # frames buffered or in an unfinished flush
        self._enqueued = 0  # sends and acks accepted so far
        self._written = 0  # ... of which written
        self._wake = trio.Event()
        self._progress = trio.Event()
        self._history_from: bytes | None = b"0"
        self._last_read = b"0"
        self._sent = self._flushes = self._send_errors = 0
        self._received = self._acked = self._malformed = self._claimed = self._groups = 0

    def inbox_of(self, node: str) -> str:
        """The inbox stream of ``node``."""
        key = self._keys.get(node)
        if key is None:
            key = self._keys[node] = self._link.key("inbox", node)
        return key

    def statistics(self) -> TransportStatistics:
        return TransportStatistics(
            sent=self._sent,
            buffered=self._pending,
            flushes=self._flushes,
            send_errors=self._send_errors,
            received=self._received,
            acked=self._acked,
            malformed=self._malformed,
            claimed=self._claimed,
            groups_created=self._groups,
        )

    # -- sending --------------------------------------------------------------------------

    def send(self, dest_node: str, frame: bytes) -> None:
        """Queue ``frame`` for ``dest_node``'s inbox; the sender task writes it soon.

        Raises :class:`TransportBackpressure` when ``max_buffered_frames`` frames already wait.
        """
        if self._pending >= self.max_buffered_frames:
            raise TransportBackpressure(dest_node, self._pending, self.max_buffered_frames)
        buffer = self._out.get(dest_node)
        if buffer is None:
            buffer = self._out[dest_node] = []
        buffer.append(frame)
        self._pending += 1
        self._enqueued += 1
        self._wake.set()

    async def send_wait(self, dest_node: str, frame: bytes) -> None:
        """:meth:`send`, waiting for room while the buffer is full. Cancelled: nothing sent."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._pending >= self.max_buffered_frames:
            await self._progress.wait()
        self.send(dest_node, frame)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def ack(self, stream: str, entry_ids: list[bytes]) -> None:
        """Acknowledge (and delete) handled entries of ``stream``; written with the next flush."""
        if not entry_ids:
            return
        pending = self._acks.get(stream)
        if pending is None:
            self._acks[stream] = list(entry_ids)
        else:
            pending.extend(entry_ids)
        self._enqueued += 1
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything sent and acked before this call is written (needs :meth:`run`)."""
        target = self._enqueued
        while self._written < target:
            await self._progress.wait()
        await trio.lowlevel.checkpoint()

    async def _send_loop(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            out, self._out = self._out, {}
            acks, self._acks = self._acks, {}
            upto = self._enqueued
            failed = await self._write(out, acks)
            written = sum(map(len, out.values())) - sum(map(len, failed.values()))
            self._pending -= written
            self._sent += written
            self._flushes += 1
            if failed:
                for dest, frames in failed.items():  # back to the front, order kept
                    self._out[dest] = frames + self._out.get(dest, [])
                self._wake.set()
                failures += 1
                await trio.sleep(backoff_delay(failures, 0.05, 2.0))
            else:
                failures = 0
                self._written = upto
            self._progress.set()
            self._progress = trio.Event()

    async def _write(
        self, out: dict[str, list[bytes]], acks: dict[str, list[bytes]]
    ) -> dict[str, list[bytes]]:
        """One pipeline: every buffered frame (a script appending up to ``XADD_CHUNK`` frames per
        call), then every pending ack. Returns the frames Redis refused, by destination."""
        group = self.group
        chunks = [
            (dest, frames[i : i + XADD_CHUNK])
            for dest, frames in out.items()
            for i in range(0, len(frames), XADD_CHUNK)
        ]

        async def attempt(client: coredis.Redis[bytes]) -> list[Any]:
            requests: list[Any] = []
            try:
                async with client.pipeline(transaction=False, raise_on_error=False) as pipe:
                    requests.extend(
                        pipe.eval(_XADD_MANY, [self.inbox_of(dest)], chunk)
                        for dest, chunk in chunks
                    )
                    for stream, ids in acks.items():
                        pipe.xack(stream, group, ids)
                        pipe.xdel(stream, ids)
            except StreamConsumerGroupError as exc:
                # An ack on a stream whose group is gone (Redis restarted): nothing to ack. The
                # frames were written; their replies precede the acks' in the pipeline.
                _log.info("ack skipped: consumer group gone", error=str(exc), node=self.node)
            return requests

        requests = await self._link.call(attempt)
        self._acked += sum(map(len, acks.values()))
        failed: dict[str, list[bytes]] = {}
        for (dest, chunk), request in zip(chunks, requests, strict=True):
            try:
                await request
            except ResponseError as exc:
                # Refused before any write (e.g. OOM: the script's first XADD fails), so the
                # whole chunk is retried. A later chunk to the same node may have succeeded:
                # order is then kept per chunk only.
                if not failed:
                    _log.warning("redis refused frames; retrying", dest=dest, error=str(exc))
                self._send_errors += len(chunk)
                failed.setdefault(dest, []).extend(chunk)
        return failed

    # -- receiving ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Create the inbox group if needed, then run the sender and the receiver until
        cancelled. Unwritten frames are dropped on cancellation: :meth:`flush` first."""
        await self._ensure_group(self.inbox)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_loop)
            nursery.start_soon(self._receive_loop)
            task_status.started()

    async def _ensure_group(self, stream: str) -> None:
        """The group on ``stream`` (created with the stream, from ID 0; BUSYGROUP is fine)."""
        try:
            await self._link.call(
                lambda c: c.xgroup_create(stream, self.group, "0", mkstream=True)
            )
        except StreamDuplicateConsumerGroupError:
            return
        self._groups += 1
        _log.info("consumer group created", stream=stream, group=self.group, node=self.node)

    async def _receive_loop(self) -> None:
        self._history_from = b"0"  # first, our own pending entries
        while True:
            try:
                result = await self._link.call(self._reader())
            except StreamConsumerGroupError:
                await self._ensure_group(self.inbox)
                continue
            entries = result.get(self._inbox_b) if result else None
            if not entries:
                self._history_from = None
                continue
            batch = _inbound(self.inbox, entries)
            self._last_read = batch[-1].entry_id
            if self._history_from is not None:
                self._history_from = self._last_read
            self._received += len(batch)
            self._on_frames(batch)

    def _reader(self) -> Callable[[coredis.Redis[bytes]], Awaitable[Any]]:
        """One read for ``RedisLink.call``: new entries (blocking), or our pending history when
        there is some, or when the first attempt failed (its reply may have been lost)."""
        attempts = 0

        async def read(client: coredis.Redis[bytes]) -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1 and self._history_from is None:
                self._history_from = self._last_read
            if self._history_from is not None:
                return await client.xreadgroup(
                    self.group, self.node, {self.inbox: self._history_from}, count=self.batch_max
                )
            return await client.xreadgroup(
                self.group, self.node, {self.inbox: ">"}, count=self.batch_max,
                block=self.block_ms,
            )

        return read

    @overload
    def decode_or_skip(self, inbound: Inbound) -> Envelope | None: ...

    @overload
    def decode_or_skip(self, inbound: Inbound, decode: Callable[[bytes], T]) -> T | None: ...

    def decode_or_skip(
        self, inbound: Inbound, decode: Callable[[bytes], Any] = decode_envelope
    ) -> Any:
        """``decode(inbound.frame)`` (an :class:`Envelope` by default), or ``None`` for a
        malformed frame, which is logged with its stream and entry id, counted, and acked."""
        try:
            return decode(inbound.frame)
        except CodecError as exc:
            self._malformed += 1
            _log.warning(
                "malformed frame skipped", stream=inbound.stream,
                entry_id=inbound.entry_id.decode(), what=exc.what, error=exc.detail,
                node=self.node,
            )
            self.ack(inbound.stream, [inbound.entry_id])
            return None

    # -- dead nodes -----------------------------------------------------------------------

    async def claim_dead(self, dead_node: str, *, min_idle_ms: int) -> list[Inbound]:
        """Take over ``dead_node``'s inbox: its pending entries idle for ``min_idle_ms`` and
        more (delivered, never acked) and its never-delivered ones, as consumer ``<this node>``.

        Call it only for a node membership declared dead. Re-route the frames, then
        :meth:`ack` them on their ``stream``, then :meth:`drop_stream`.
        """
        stream = self.inbox_of(dead_node)
        if not await self._link.call(lambda c: c.exists([stream])):
            return []
        await self._ensure_group(stream)  # gone if Redis restarted since
        claimed: list[Inbound] = []
        start: bytes = b"0-0"
        while True:
            reply = await self._link.call(
                lambda c, cursor=start: c.xautoclaim(  # type: ignore[misc]
                    stream, self.group, self.node, min_idle_ms, cursor, count=self.batch_max
                )
            )
            start = cast(bytes, reply[0])
            claimed.extend(_inbound(stream, cast(tuple[StreamEntry, ...], reply[1])))
            if start in (b"0-0", b"0"):
                break
        key = stream.encode()
        while True:
            result = await self._link.call(
                lambda c: c.xreadgroup(self.group, self.node, {stream: ">"}, count=self.batch_max)
            )
            entries = result.get(key) if result else None
            if not entries:
                break
            claimed.extend(_inbound(stream, entries))
        self._claimed += len(claimed)
        return claimed

    async def drop_stream(self, dead_node: str, *, force: bool = False) -> bool:
        """Delete ``dead_node``'s inbox once drained (no entry left: acked entries are deleted),
        after writing pending acks. ``force`` deletes it regardless. Returns whether deleted."""
        stream = self.inbox_of(dead_node)
        await self.flush()
        flag = "1" if force else "0"
        deleted = await self._link.call(lambda c: c.eval(_DROP_IF_DRAINED, [stream], [flag]))
        return deleted != -1


def _inbound(stream: str, entries: tuple[StreamEntry, ...]) -> list[Inbound]:
    # An entry deleted while pending comes back without fields: an empty (malformed) frame.
    return [
        Inbound(
            stream,
            cast(bytes, entry.identifier),
            cast(bytes, entry.field_values.get(FIELD, b"") if entry.field_values else b""),
        )
        for entry in entries
    ]
