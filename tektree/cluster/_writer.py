"""The writing half of the stream transport: frames and acks to the nodes' inbox streams.

Sending is synchronous. When no write is in flight, :meth:`StreamTransport.send` writes the
frame at once from the calling task (an asker, a handler replying): one ``send`` syscall, no task
switch, with every pending ack in the same write. So it does while earlier direct writes are
unconfirmed if the reader handed out frames since the last one (sequential asks and their
replies), up to ``DIRECT_UNCONFIRMED`` of them: their replies are read in one go. Otherwise the
frame is buffered and the sender task writes everything buffered, for every destination and with
the pending acks, as one batch as soon as the writes in flight are confirmed: a burst of tells
still goes out in large batches, and order is kept. One frame goes as a plain ``XADD``, several
in a Lua script (``EVALSHA``; ``NOSCRIPT`` loads it again) appending up to 1,000 per call.

The hot paths (the writer, the reader's ``XREADGROUP``) speak RESP on two sockets of their own
through :class:`~tektree.cluster._wire.RespWire`, driven synchronously where they can be: coredis
costs ~300 us of Python per command, a trio stream round trip ~50 us. Everything else (groups,
claims, drops) goes through coredis. The replies of direct writes are not waited for: a later
direct write reads them when ``DIRECT_UNCONFIRMED`` are out, the sender task when it writes next,
the reader when its blocking read comes back empty (idle); :meth:`StreamTransport.flush` waits
for them.

Acks of this node's own inbox are lazy: they ride with the next write of frames (a handler's
reply carries the ack of its request), or ahead of the reader's next ``XREADGROUP`` (within
``block_ms``), or :meth:`StreamTransport.flush` forces them out; an entry is still deleted only
after ``ack``, i.e. after its frame was handled. The reader re-arms its blocking read right after
handing out a batch, carrying only the acks made before it: those of the batch are left for the
writes its handlers are about to make. What those handlers send before their first await (the
replies of asks handled inline) is held (``_holding``) and goes with every buffered ack ahead of
that next read, in the same write (``_carry``; see :mod:`tektree.cluster.transport`).

Frames accepted but not yet written (buffered or in an unfinished flush) are bounded by
``max_buffered_frames``: above it ``send`` raises :class:`TransportBackpressure` and
:meth:`StreamTransport.send_wait` waits for room. While Redis is unreachable the sender keeps the
frames and retries the same batch (``RedisLink.call``); frames Redis refuses with an error reply
(e.g. OOM) go back to the front of their buffer and are retried with backoff.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Any

import structlog
import trio

from tektree._pool import backoff_delay
from tektree.cluster._redis import RedisLink
from tektree.cluster._resp import RespConnectionError, RespError, encode_command
from tektree.cluster._wire import RespWire

__all__ = ["FIELD", "XADD_CHUNK", "FrameWriter", "TransportBackpressure"]

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

DIRECT_UNCONFIRMED = 16
"""Direct writes that may be out before their replies are read: one ``recv`` (and one parse)
confirms up to this many sequential asks or replies, instead of one each."""


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


class FrameWriter:
    """Frames and acks buffered, then written to Redis: the base of ``StreamTransport``."""

    def __init__(self, link: RedisLink, *, node: str, max_buffered_frames: int) -> None:
        if max_buffered_frames < 1:
            raise ValueError(f"max_buffered_frames must be >= 1, got {max_buffered_frames}")
        self._link = link
        self._keys: dict[str, str] = {}
        self.node = node
        self.group = link.key("g")
        self.inbox = self.inbox_of(node)
        self.max_buffered_frames = max_buffered_frames
        self._out: dict[str, list[bytes]] = {}
        self._acks: dict[str, list[bytes]] = {}
        self._pending = 0  # frames buffered or in an unconfirmed write
        self._enqueued = 0  # sends and acks accepted so far
        self._written = 0  # ... of which written and confirmed
        self._wake = trio.Event()
        # Set (then dropped) when writes are confirmed; made only when someone waits for one:
        # most confirmations (one per ask or reply) have nobody waiting.
        self._progress: trio.Event | None = None
        self._pumping = False  # the send loop is writing: sends only buffer
        self._refused = False  # Redis refused frames: the send loop backs off, then retries
        self._need_script = True  # load the XADD script before the next write of many frames
        self._inflight: deque[_Batch] = deque()  # written, replies not all read yet, in order
        self._replies: list[Any] = []  # the replies read so far of ``_inflight[0]`` and on
        self._sent = self._flushes = self._send_errors = self._direct = 0
        self._received = 0  # frames this node's reader handed out (``StreamTransport``)
        # While the reader runs handlers (their synchronous part), what they send is held
        # (``_holding``), then written ahead of the reader's next XREADGROUP, in the same write
        # (``_carried``: that batch until its replies are read; no other write goes out
        # meanwhile, so frames to one node keep their order).
        self._holding = False
        self._carried: _Batch | None = None
        self._carried_writes = 0
        self._direct_mark = -1  # ``_received`` at the last direct write
        self._acked = 0
        self._acks_in_flight = 0  # own-inbox acks the reader took, not yet written
        # Frames and acks go on a socket of their own, written from the sending task when it
        # can be (coredis costs ~300 us of Python per command, a trio round trip ~50 us).
        self._writer = RespWire(link.url)
        self._heads: dict[tuple[str, int], bytes] = {}
        self._xadd_heads: dict[str, bytes] = {}  # by destination node: one frame's XADD
        self._ack_heads: dict[str, tuple[bytes, bytes]] = {}

    def inbox_of(self, node: str) -> str:
        """The inbox stream of ``node``."""
        key = self._keys.get(node)
        if key is None:
            key = self._keys[node] = self._link.key("inbox", node)
        return key

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
        if self._holding:
            return  # sent by a handler the reader runs: it rides with the reader's next read
        if self._pumping or not self._write_now():
            self._pumping = True  # the send loop writes from now on: later sends only buffer
            self._wake.set()

    def full(self) -> bool:
        """Whether ``max_buffered_frames`` frames wait: a :meth:`send` now would raise."""
        return self._pending >= self.max_buffered_frames

    async def wait_for_room(self) -> None:
        """Return once fewer than ``max_buffered_frames`` frames wait (a checkpoint)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._pending >= self.max_buffered_frames:
            self._wake.set()
            await self._progress_event().wait()

    async def send_wait(self, dest_node: str, frame: bytes) -> None:
        """:meth:`send`, waiting for room while the buffer is full. Cancelled: nothing sent."""
        await self.wait_for_room()
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
        if self._carried is not None:
            self._carried_wanted()
        while self._written < target or self._acks_in_flight:
            if self._written < target:
                self._wake.set()  # the reader's acks need no writer: it reports their write
            await self._progress_event().wait()
        await trio.lowlevel.checkpoint()

    def _progress_event(self) -> trio.Event:
        """The event the next confirmation of a write sets."""
        event = self._progress
        if event is None:
            event = self._progress = trio.Event()
        return event

    def _made_progress(self) -> None:
        """Writes were confirmed: wake whoever waits for that."""
        event = self._progress
        if event is not None:
            self._progress = None
            event.set()

    def _write_now(self) -> bool:
        """The direct path: write everything buffered now. False when the send loop must do
        it: the writer is busy, or a write is still unconfirmed and either nothing was read
        since (a burst of sends: it goes out in batches behind the first write) or
        ``DIRECT_UNCONFIRMED`` writes are (their replies are read here first, without
        waiting: they are in by now, most likely)."""
        inflight = self._inflight
        if self._carried is not None:  # order: the reader's write is confirmed first
            self._carried_wanted()
            return False
        if self._refused or not self._writer.connected:
            return False
        try:
            if inflight:
                if self._direct_mark == self._received:
                    return False
                if len(inflight) >= DIRECT_UNCONFIRMED:
                    self._take_replies()
                    if len(inflight) >= DIRECT_UNCONFIRMED:
                        return False
            self._start_batch()
        except RespConnectionError:
            self._writer_lost()
            return False
        self._direct += 1
        self._direct_mark = self._received
        return not self._writer.unsent

    def _start_batch(self) -> None:
        """Write everything buffered (frames, then acks) as one batch, now: the batch is in
        flight until its replies are read (:meth:`_take_replies`)."""
        built = self._build_batch()
        if built is not None:
            self._inflight.append(built[0])
            self._writer.write_nowait(built[1])

    def _build_batch(self) -> tuple[_Batch, bytes] | None:
        """Everything buffered (frames, then acks) as one batch and its RESP, taken out of
        the buffers; ``None`` when nothing is buffered."""
        out, self._out = self._out, {}
        acks, self._acks = self._acks, {}
        if not out and not acks:
            return None
        batch = _Batch(out, acks, self._enqueued)
        chunks = batch.chunks
        parts: list[bytes] = []
        total = 0
        for dest, frames in out.items():
            if len(frames) == 1:  # the common case (an ask, a reply): one plain XADD
                frame = frames[0]
                chunks.append((dest, frames))
                head = self._xadd_heads.get(dest)
                if head is None:
                    head = self._xadd_heads[dest] = self._head(self.inbox_of(dest), 1)
                parts += (head, b"$%d\r\n" % len(frame), frame, b"\r\n")
                total += 1
                continue
            inbox = self.inbox_of(dest)
            total += len(frames)
            for i in range(0, len(frames), XADD_CHUNK):
                chunk = frames[i : i + XADD_CHUNK]
                chunks.append((dest, chunk))
                parts.append(self._head(inbox, len(chunk)))
                for frame in chunk:
                    parts.append(b"$%d\r\n" % len(frame))
                    parts.append(frame)
                    parts.append(b"\r\n")
        acked = 0
        for stream, ids in acks.items():
            parts.append(self._ack_commands(stream, ids))
            acked += len(ids)
        batch.acked = acked
        batch.frames = total
        batch.count = len(chunks) + 2 * len(acks)
        return batch, b"".join(parts)

    # -- frames carried by the reader's next read --------------------------------------------

    def _release_held(self) -> None:
        """The reader stopped holding sends (its handlers await): write what they sent."""
        self._holding = False
        if self._out and (self._pumping or not self._write_now()):
            self._pumping = True
            self._wake.set()

    def _carry(self, low_water: bool) -> tuple[_Batch, bytes] | None:
        """For the reader, about to write its next read: what its handlers sent (and every
        buffered ack) as a batch to ride ahead of the read in the same write, if no other
        write is in flight and the reader's socket can wait past its replies (``low_water``);
        else the writer is given them, and ``None`` returned."""
        if not self._out:
            return None
        if (not low_water or self._inflight or self._pumping or self._refused
                or self._need_script):
            self._release_held()
            return None
        built = self._build_batch()
        if built is not None:
            self._carried = built[0]
            self._carried_writes += 1
        return built

    def _carried_wanted(self) -> None:
        """Something waits for the carried batch's confirmation: have the reader wake for its
        replies now rather than with its read's (:class:`StreamTransport` does)."""

    def _carried_written(self, replies: list[Any]) -> None:
        """The replies of the carried batch came back on the reader's socket."""
        batch, self._carried = self._carried, None
        if batch is not None:
            self._settle(batch, replies)

    def _carried_lost(self) -> None:
        """The reader's socket broke before the carried batch's replies came: back to the
        front of the buffers (it may have been written: a duplicate at worst)."""
        batch, self._carried = self._carried, None
        if batch is not None:
            self._requeue(batch)
            self._wake.set()
            self._made_progress()

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
        """Read the replies of the batches in flight that arrived, without waiting; settle
        each once all its replies are in. Raises :class:`RespConnectionError` if the writer's
        link broke."""
        inflight = self._inflight
        if not inflight:
            return
        replies = self._writer.read_nowait()
        if not replies:
            return
        got = self._replies
        if got:
            got.extend(replies)
        else:
            got = replies
        count = inflight[0].count
        if len(got) == count and len(inflight) == 1:  # the common case: no slicing
            self._replies = []
            self._settle(inflight.popleft(), got)
            return
        start = 0
        while inflight and len(got) - start >= inflight[0].count:
            batch = inflight.popleft()
            self._settle(batch, got[start : start + batch.count])
            start += batch.count
        self._replies = got[start:]

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
            if self._out or self._acks or self._inflight:
                self._written = batch.upto
            else:
                self._written = self._enqueued
            self._made_progress()
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
        elif not self._out and not self._acks and not self._inflight:
            self._written = self._enqueued
        else:
            self._written = batch.upto
        self._made_progress()

    def _writer_lost(self) -> None:
        """The writer's connection broke: what was in flight goes back to the front of the
        buffers (it may have been written: a duplicate at worst), the send loop reconnects."""
        self._writer.close()
        self._requeue_inflight()
        self._wake.set()

    def _requeue_inflight(self) -> None:
        inflight = self._inflight
        self._replies = []
        while inflight:  # the last written first: each goes in front of those after it
            self._requeue(inflight.pop())

    def _requeue(self, batch: _Batch) -> None:
        """``batch``'s frames and acks back to the front of the buffers."""
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
                if self._carried is not None:  # the reader's write is confirmed first
                    self._carried_wanted()
                    await self._progress_event().wait()
                    continue
                if not writer.connected:
                    self._requeue_inflight()
                    await writer.connect()
                    self._need_script = True
                if self._need_script and not self._inflight:
                    loaded = await writer.roundtrip([["SCRIPT", "LOAD", _XADD_MANY]])
                    if isinstance(loaded[0], RespError):
                        raise RespConnectionError(f"redis is not ready: {loaded[0]}")
                    self._need_script = False
                    continue
                while self._inflight:
                    await writer.drain()
                    self._take_replies()
                    if self._inflight:
                        await writer.wait_readable()
                if self._refused or self._need_script:
                    if self._refused:
                        return  # the loop backs off, then retries
                    continue
                if not self._out and not self._acks:
                    self._written = self._enqueued
                    self._made_progress()
                    return
                self._start_batch()
        except RespConnectionError:
            self._writer_lost()
            raise
        except BaseException:
            # Cancelled mid-write: replies can no longer be paired with requests.
            self._writer_lost()
            raise

    def _ack_commands(self, stream: str, ids: list[bytes]) -> bytes:
        """``XACK stream group ids...`` then ``XDEL stream ids...``, in RESP."""
        heads = self._ack_heads.get(stream)
        if heads is None:
            xack = encode_command(["XACK", stream, self.group]).split(b"\r\n", 1)[1]
            xdel = encode_command(["XDEL", stream]).split(b"\r\n", 1)[1]
            heads = self._ack_heads[stream] = (xack, xdel)
        if len(ids) == 1:  # the common case: the ack of one ask or reply
            arg = b"$%d\r\n%s\r\n" % (len(ids[0]), ids[0])
            return b"".join((b"*4\r\n", heads[0], arg, b"*3\r\n", heads[1], arg))
        args = b"".join([b"$%d\r\n%s\r\n" % (len(i), i) for i in ids])
        return b"".join(
            (b"*%d\r\n" % (len(ids) + 3), heads[0], args, b"*%d\r\n" % (len(ids) + 2), heads[1],
             args)
        )
