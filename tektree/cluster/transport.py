"""Node-to-node frames over Redis Streams: one inbox stream per node, one consumer group.

Each node reads ``{prefix}:inbox:<node>`` as consumer ``<node>`` of the group ``{prefix}:g`` and
hands every batch to ``on_frames`` (which may return an awaitable, e.g. asks it handles right
there: the reader awaits it before it reads on). Delivery is at-least-once: the node calls
:meth:`ack` only after it handled a frame; an acked entry is also deleted (``XACK`` +
``XDEL``), so a stream holds only what is undelivered or unacked and never needs trimming.
Frames from one sender to one destination arrive in the order sent. Duplicates are possible
after a connection breaks in the middle of a write (the whole batch is retried) or when a
survivor claims a dead node's entries; effects are made idempotent by message ids upstream.

Sending is synchronous. When no write is in flight, :meth:`StreamTransport.send` writes the
frame at once from the calling task (an asker, a handler replying): one ``send`` syscall, no task
switch, with every pending ack in the same write. Otherwise the frame is buffered and the sender
task writes everything buffered, for every destination and with the pending acks, as one batch as
soon as the batch in flight is confirmed: at most one batch is in flight, so a burst of tells
still goes out in large batches, and order is kept. One frame goes as a plain ``XADD``, several
in a Lua script (``EVALSHA``; ``NOSCRIPT`` loads it again) appending up to 1,000 per call.

The hot paths (the writer, the reader's ``XREADGROUP``) speak RESP on two sockets of their own
through :class:`~tektree.cluster._wire.RespWire`, driven synchronously where they can be: coredis
costs ~300 us of Python per command, a trio stream round trip ~50 us. Everything else (groups,
claims, drops) goes through coredis. The replies of a direct write are not waited for: the reader
takes them when it wakes (a reply to the frame arrives after them), or the next send does, or
the sender task when it writes next; :meth:`StreamTransport.flush` waits for them.

Acks of this node's own inbox are lazy: they ride with the next write of frames (a handler's
reply carries the ack of its request), or ahead of the reader's next ``XREADGROUP`` (within
``block_ms``), or :meth:`StreamTransport.flush` forces them out; an entry is still deleted only
after ``ack``, i.e. after its frame was handled. The reader re-arms its blocking read right after
handing out a batch, carrying only the acks made before it: those of the batch are left for the
writes its handlers are about to make.

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

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar, cast, overload

import attrs
import structlog
import trio
from coredis.exceptions import StreamDuplicateConsumerGroupError
from coredis.response.types import StreamEntry

from tektree._codec import decode_envelope
from tektree._envelope import Envelope
from tektree._errors import CodecError
from tektree._pool import backoff_delay
from tektree.cluster._redis import RedisLink
from tektree.cluster._resp import RespConnectionError, RespError, encode_command
from tektree.cluster._wire import RespWire

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

_XADD_MANY_SHA = hashlib.sha1(_XADD_MANY.encode()).hexdigest()

_TRANSIENT_REPLIES = frozenset({"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN"})
"""Error replies of a Redis that is starting or busy: the read is retried like a lost link."""

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


class _Batch:
    """One write of frames and acks, in flight until all its replies are read."""

    __slots__ = ("acked", "acks", "chunks", "count", "frames", "out", "upto")

    def __init__(self, out: dict[str, list[bytes]], acks: dict[str, list[bytes]],
                 upto: int) -> None:
        self.out = out
        self.acks = acks
        self.upto = upto  # sends and acks accepted up to this batch
        self.chunks: list[tuple[str, list[bytes]]] = []  # one XADD or script call each
        self.count = 0  # replies expected
        self.frames = 0
        self.acked = 0


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
    direct: int  # writes made by the sending task itself (the writer was idle)
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
        on_frames: Callable[[list[Inbound]], Awaitable[None] | None],
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
        self._pending = 0  # frames buffered or in an unconfirmed write
        self._enqueued = 0  # sends and acks accepted so far
        self._written = 0  # ... of which written and confirmed
        self._wake = trio.Event()
        self._progress = trio.Event()
        self._pumping = False  # the send loop is writing: sends only buffer
        self._refused = False  # Redis refused frames: the send loop backs off, then retries
        self._need_script = True  # load the XADD script before the next write of many frames
        self._inflight: _Batch | None = None  # written, replies not all read yet
        self._replies: list[Any] = []  # the replies of ``_inflight`` read so far
        self._history_from: bytes | None = b"0"
        self._last_read = b"0"
        self._sent = self._flushes = self._send_errors = self._direct = 0
        self._acks_in_flight = 0  # own-inbox acks the reader took, not yet written
        # The hot paths speak RESP on sockets of their own, driven without a task switch where
        # they can be (coredis costs ~300 us of Python per command, a trio round trip ~50 us):
        # the writer of frames and acks, and the reader's blocking XREADGROUP.
        self._writer = RespWire(link.url)
        self._reader_wire = RespWire(link.url)
        self._heads: dict[tuple[str, int], bytes] = {}
        self._ack_heads: dict[str, tuple[bytes, bytes]] = {}
        self._blocking_read = encode_command([
            "XREADGROUP", "GROUP", self.group, node, "COUNT", batch_max, "BLOCK", block_ms,
            "STREAMS", self.inbox, ">",
        ])
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
            direct=self._direct,
            send_errors=self._send_errors,
            received=self._received,
            acked=self._acked,
            malformed=self._malformed,
            claimed=self._claimed,
            groups_created=self._groups,
        )

    # -- sending --------------------------------------------------------------------------

    def send(self, dest_node: str, frame: bytes) -> None:
        """Queue ``frame`` for ``dest_node``'s inbox and write it now if the writer is idle
        (one ``send`` syscall from this task, no task switch), else soon with the batch.

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
        if self._pumping or not self._write_now():
            self._pumping = True  # the send loop writes from now on: later sends only buffer
            self._wake.set()

    async def send_wait(self, dest_node: str, frame: bytes) -> None:
        """:meth:`send`, waiting for room while the buffer is full. Cancelled: nothing sent."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._pending >= self.max_buffered_frames:
            self._wake.set()
            await self._progress.wait()
        self.send(dest_node, frame)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def ack(self, stream: str, entry_ids: list[bytes]) -> None:
        """Acknowledge (and delete) handled entries of ``stream``; written with the next write."""
        if not entry_ids:
            return
        pending = self._acks.get(stream)
        if pending is None:
            self._acks[stream] = list(entry_ids)
        else:
            pending.extend(entry_ids)
        self._enqueued += 1
        if stream != self.inbox:
            self._wake.set()
        # Acks of our own inbox are lazy: they ride with the next write of frames or the
        # reader's next XREADGROUP (within ``block_ms``), or :meth:`flush` forces them out.

    async def flush(self) -> None:
        """Wait until everything sent and acked before this call is written and Redis
        confirmed it (needs :meth:`run`)."""
        target = self._enqueued
        while self._written < target or self._acks_in_flight:
            if self._written < target:
                self._wake.set()  # the reader's acks need no writer: it reports their write
            await self._progress.wait()
        await trio.lowlevel.checkpoint()

    def _write_now(self) -> bool:
        """The direct path: if no write is in flight, write everything buffered now. False
        when the send loop must do it. (The replies of the last write are not looked for
        here: the reader took them if a reply came back since; a burst of sends then goes
        out in one batch behind the first rather than in one write each.)"""
        if self._refused or self._inflight is not None or not self._writer.connected:
            return False
        try:
            self._start_batch()
        except RespConnectionError:
            self._writer_lost()
            return False
        self._direct += 1
        return not self._writer.unsent

    def _start_batch(self) -> None:
        """Write everything buffered (frames, then acks) as one batch, now: the batch is in
        flight until its replies are read (:meth:`_take_replies`)."""
        out, self._out = self._out, {}
        acks, self._acks = self._acks, {}
        if not out and not acks:
            return
        batch = _Batch(out, acks, self._enqueued)
        parts: list[bytes] = []
        for dest, frames in out.items():
            inbox = self.inbox_of(dest)
            for i in range(0, len(frames), XADD_CHUNK):
                chunk = frames[i : i + XADD_CHUNK]
                batch.chunks.append((dest, chunk))
                parts.append(self._head(inbox, len(chunk)))
                for frame in chunk:
                    parts.append(b"$%d\r\n" % len(frame))
                    parts.append(frame)
                    parts.append(b"\r\n")
        for stream, ids in acks.items():
            parts.append(self._ack_commands(stream, ids))
            batch.acked += len(ids)
        batch.frames = sum(len(chunk) for _, chunk in batch.chunks)
        batch.count = len(batch.chunks) + 2 * len(acks)
        self._inflight = batch
        self._replies = []
        self._writer.write_nowait(b"".join(parts))

    def _head(self, inbox: str, frames: int) -> bytes:
        """The RESP of a command appending ``frames`` frames to ``inbox``, up to the frames:
        a plain ``XADD`` for one frame, else the script (one command for many)."""
        head = self._heads.get((inbox, frames))
        if head is None:
            if frames == 1:
                head = b"*5" + encode_command(["XADD", inbox, "*", FIELD])[2:]
            else:
                head = b"*%d\r\n" % (frames + 4) + encode_command(
                    ["EVALSHA", _XADD_MANY_SHA, 1, inbox]
                ).split(b"\r\n", 1)[1]
            if frames < 16:  # the common sizes
                self._heads[(inbox, frames)] = head
        return head

    def _take_replies(self) -> None:
        """Read the replies of the batch in flight that arrived, without waiting; settle it
        once all are in. Raises :class:`RespConnectionError` if the writer's link broke."""
        batch = self._inflight
        if batch is None:
            return
        replies = self._writer.read_nowait()
        if not replies:
            return
        got = self._replies
        got.extend(replies)
        if len(got) >= batch.count:
            self._inflight = None
            self._replies = []
            self._settle(batch, got)

    def _settle(self, batch: _Batch, replies: list[Any]) -> None:
        """A batch's replies are in: count what was written, put back what Redis refused."""
        self._flushes += 1
        for reply in replies:
            if type(reply) is RespError:
                break
        else:  # the common case: all written
            self._pending -= batch.frames
            self._sent += batch.frames
            self._acked += batch.acked
            self._written = batch.upto if self._out or self._acks else self._enqueued
            self._progress.set()
            self._progress = trio.Event()
            return
        chunks = batch.chunks
        for reply in replies[len(chunks) :]:
            if isinstance(reply, RespError):
                # An ack on a stream whose group is gone (Redis restarted): nothing to ack.
                _log.info("ack skipped: consumer group gone", error=str(reply), node=self.node)
                break
        self._acked += batch.acked
        failed: dict[str, list[bytes]] = {}
        for (dest, chunk), reply in zip(chunks, replies, strict=False):
            if isinstance(reply, RespError):
                # Refused before any write (e.g. OOM: the first XADD fails; NOSCRIPT: the
                # script is gone), so the whole chunk is retried. A later chunk to the same
                # node may have succeeded: order is then kept per chunk only.
                if reply.kind == "NOSCRIPT":
                    self._need_script = True
                else:
                    if not self._refused:
                        _log.warning("redis refused frames; retrying", dest=dest,
                                     error=str(reply))
                    self._send_errors += len(chunk)
                    self._refused = True
                failed.setdefault(dest, []).extend(chunk)
        written = batch.frames - sum(map(len, failed.values()))
        self._pending -= written
        self._sent += written
        if failed:
            for dest, frames in failed.items():  # back to the front, order kept
                self._out[dest] = frames + self._out.get(dest, [])
            self._wake.set()
        elif not self._out and not self._acks:
            self._written = self._enqueued
        else:
            self._written = batch.upto
        self._progress.set()
        self._progress = trio.Event()

    def _writer_lost(self) -> None:
        """The writer's connection broke: what was in flight goes back to the front of the
        buffers (it may have been written: a duplicate at worst), the send loop reconnects."""
        self._writer.close()
        self._requeue_inflight()
        self._wake.set()

    def _requeue_inflight(self) -> None:
        batch, self._inflight = self._inflight, None
        self._replies = []
        if batch is not None:
            for dest, frames in batch.out.items():
                self._out[dest] = frames + self._out.get(dest, [])
            for stream, ids in batch.acks.items():
                self._acks[stream] = ids + self._acks.get(stream, [])

    async def _send_loop(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            self._pumping = True
            try:
                await self._link.call(self._pump)
            finally:
                self._pumping = False
            if self._refused:
                failures += 1
                await trio.sleep(backoff_delay(failures, 0.05, 2.0))
                self._refused = False
                self._wake.set()
            else:
                failures = 0

    async def _pump(self, _: object) -> None:
        """Write until nothing is buffered and nothing in flight (for ``RedisLink.call``:
        a lost connection is raised, and retried with backoff)."""
        writer = self._writer
        try:
            while True:
                if not writer.connected:
                    self._requeue_inflight()
                    await writer.connect()
                    self._need_script = True
                if self._need_script and self._inflight is None:
                    loaded = await writer.roundtrip([["SCRIPT", "LOAD", _XADD_MANY]])
                    if isinstance(loaded[0], RespError):
                        raise RespConnectionError(f"redis is not ready: {loaded[0]}")
                    self._need_script = False
                    continue
                while self._inflight is not None:
                    await writer.drain()
                    self._take_replies()
                    if self._inflight is not None:
                        await writer.wait_readable()
                if self._refused or self._need_script:
                    if self._refused:
                        return  # the loop backs off, then retries
                    continue
                if not self._out and not self._acks:
                    self._written = self._enqueued
                    self._progress.set()
                    self._progress = trio.Event()
                    return
                self._start_batch()
        except RespConnectionError:
            self._writer_lost()
            raise
        except BaseException:
            # Cancelled mid-write: replies can no longer be paired with requests.
            self._writer_lost()
            raise

    # -- receiving ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Create the inbox group if needed, then run the sender and the receiver until
        cancelled. Unwritten frames are dropped on cancellation: :meth:`flush` first."""
        await self._ensure_group(self.inbox)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send_loop)
                nursery.start_soon(self._receive_loop)
                task_status.started()
        finally:
            self._writer.close()
            self._reader_wire.close()

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
        carry: list[bytes] | None = None
        while True:
            # The read carries the acks of our inbox made before the last batch was handed out
            # that no write took meanwhile; those of that batch are left for the writes its
            # handlers are about to make (a reply, the next ask), or for the next read.
            acks: list[list[bytes] | None] = [carry]  # counted in _acks_in_flight already
            carry = None
            try:
                batch = await self._link.call(self._reader(acks))
            except RespError as exc:
                if exc.kind != "NOGROUP":
                    raise
                await self._ensure_group(self.inbox)
                continue
            finally:
                ids = acks[0]
                if ids:  # not written (failed or cancelled): back for the next write
                    self._acks.setdefault(self.inbox, [])[:0] = ids
                    self._acks_in_flight -= 1
                    self._wake.set()
            if self._inflight is not None and not self._pumping:
                # The replies of a direct write are in by now, most likely (a reply to it is):
                # take them here, which spares the writer a wake of its own.
                try:
                    self._take_replies()
                except RespConnectionError:
                    self._writer_lost()
            carry = self._acks.pop(self.inbox, None)
            if carry:
                self._acks_in_flight += 1
            if not batch:
                self._history_from = None
                continue
            self._last_read = batch[-1].entry_id
            if self._history_from is not None:
                self._history_from = self._last_read
            self._received += len(batch)
            handled = self._on_frames(batch)
            if handled is not None:
                await handled

    def _reader(
        self, acks: list[list[bytes] | None]
    ) -> Callable[[object], Awaitable[list[Inbound]]]:
        """One read for ``RedisLink.call``: new entries (blocking), or our pending history when
        there is some, or when the first attempt failed (its reply may have been lost).

        The read carries ``acks[0]``, acks of our inbox (``XACK`` + ``XDEL`` ahead of the
        ``XREADGROUP`` in one write): they cost no round trip of their own. Once written,
        ``acks[0]`` becomes ``None``."""
        attempts = 0

        async def read(_: object) -> list[Inbound]:
            nonlocal attempts
            attempts += 1
            if attempts > 1 and self._history_from is None:
                self._history_from = self._last_read
            return await self._read(acks)

        return read

    async def _read(self, acks: list[list[bytes] | None]) -> list[Inbound]:
        inbox = self.inbox
        ids = acks[0]
        commands = 1
        payload = self._blocking_read
        if self._history_from is not None:
            payload = encode_command([
                "XREADGROUP", "GROUP", self.group, self.node, "COUNT", self.batch_max,
                "STREAMS", inbox, self._history_from,
            ])
        if ids:
            payload = self._ack_commands(inbox, ids) + payload
            commands = 3
        wire = self._reader_wire
        try:
            if not wire.connected:
                await wire.connect()
            wire.write_nowait(payload)
            await wire.drain()
            replies: list[Any] = []
            while True:
                await wire.wait_readable()  # a blocking read: nothing is there yet
                for reply in wire.read_nowait():
                    replies.append(reply)
                    if len(replies) == 2 and ids:
                        self._own_acks_written(acks, reply)
                if len(replies) == commands:
                    break
        except BaseException:
            wire.close()  # a read may still be pending on it
            raise
        reply = replies[-1]
        if isinstance(reply, RespError):
            if reply.kind in _TRANSIENT_REPLIES:  # retried by RedisLink.call
                raise RespConnectionError(f"redis is not ready: {reply}") from reply
            raise reply
        return _inbound_resp(inbox, reply)

    def _own_acks_written(self, acks: list[list[bytes] | None], reply: Any) -> None:
        """The reply of the reader's XDEL: the acks it carried are written."""
        ids = acks[0]
        if not ids:
            return
        if isinstance(reply, RespError):
            _log.info("ack skipped: consumer group gone", error=str(reply), node=self.node)
        self._acked += len(ids)
        acks[0] = None
        self._acks_in_flight -= 1
        self._progress.set()
        self._progress = trio.Event()

    def _ack_commands(self, stream: str, ids: list[bytes]) -> bytes:
        """``XACK stream group ids...`` then ``XDEL stream ids...``, in RESP."""
        heads = self._ack_heads.get(stream)
        if heads is None:
            xack = encode_command(["XACK", stream, self.group]).split(b"\r\n", 1)[1]
            xdel = encode_command(["XDEL", stream]).split(b"\r\n", 1)[1]
            heads = self._ack_heads[stream] = (xack, xdel)
        args = b"".join([b"$%d\r\n%s\r\n" % (len(i), i) for i in ids])
        return b"".join(
            (b"*%d\r\n" % (len(ids) + 3), heads[0], args, b"*%d\r\n" % (len(ids) + 2), heads[1],
             args)
        )

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


def _inbound_resp(stream: str, reply: Any) -> list[Inbound]:
    """The entries of an ``XREADGROUP`` reply on one stream (``None`` when it timed out)."""
    if not reply:
        return []
    batch = []
    for entry_id, fields in reply[0][1]:
        # An entry deleted while pending comes back without fields: an empty (malformed) frame.
        frame = b""
        if fields:
            frame = fields[1] if fields[0] == FIELD else _field(fields)
        batch.append(Inbound(stream, entry_id, frame))
    return batch


def _field(fields: list[bytes]) -> bytes:
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == FIELD:
            return fields[i + 1]
    return b""
