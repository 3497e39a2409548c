"""Node-to-node frames over Redis Streams: one inbox stream per node, one consumer group.

Each node reads ``{prefix}:inbox:<node>`` as consumer ``<node>`` of the group ``{prefix}:g`` and
hands every batch to ``on_frames`` (which may return an awaitable, e.g. asks it handles right
there: the reader awaits it before it reads on). Delivery is at-least-once: the node calls
:meth:`ack` only after it handled a frame; an acked entry is also deleted (``XACK`` +
``XDEL``), so a stream holds only what is undelivered or unacked and never needs trimming.
Frames from one sender to one destination arrive in the order sent. Duplicates are possible
after a connection breaks in the middle of a write (the whole batch is retried) or when a
survivor claims a dead node's entries; effects are made idempotent by message ids upstream.

Writing (from the sending task when the writer is idle, else in batches; lazy acks;
backpressure; retries) is :class:`~tektree.cluster._writer.FrameWriter`'s, this class's base:
see :mod:`tektree.cluster._writer`. What handlers send while the reader hands a batch out, up to
their first await (the replies of asks handled inline), is held, then written ahead of the
reader's next ``XREADGROUP`` in the same write when no other write is in flight: one ``send`` and
one Redis read per ask answered, not two. ``SO_RCVLOWAT`` (plain TCP) keeps their replies from
waking the reader before the read's own; whoever needs them confirmed sooner (a flush, a send,
the send loop) lowers it. A read that fails puts them back for the writer.

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
import structlog
import trio
from coredis.exceptions import StreamDuplicateConsumerGroupError
from coredis.response.types import StreamEntry

from tektree._codec import decode_envelope
from tektree._envelope import Envelope
from tektree._errors import CodecError
from tektree.cluster._redis import TRANSIENT_ERRORS, RedisLink
from tektree.cluster._resp import RespConnectionError, RespError, encode_command
from tektree.cluster._wire import RespWire
from tektree.cluster._writer import FIELD, FrameWriter, TransportBackpressure, _Batch

__all__ = ["Inbound", "StreamTransport", "TransportBackpressure", "TransportStatistics"]

T = TypeVar("T")

_log = structlog.get_logger("tektree.cluster.transport")

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


@attrs.frozen(kw_only=True)
class TransportStatistics:
    """A snapshot of :meth:`StreamTransport.statistics`."""

    sent: int
    buffered: int
    flushes: int
    direct: int  # writes made by the sending task itself (the writer was idle)
    carried: int  # writes of what handlers sent, made with the reader's next read
    send_errors: int
    received: int
    acked: int
    malformed: int
    claimed: int
    groups_created: int


class StreamTransport(FrameWriter):
    """This node's inbox reader, and (:class:`FrameWriter`) its writer to other nodes' inboxes."""

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
        if batch_max < 1 or block_ms < 1:
            raise ValueError(f"batch_max ({batch_max}) and block_ms ({block_ms}) must be >= 1")
        super().__init__(link, node=node, max_buffered_frames=max_buffered_frames)
        self._inbox_b = self.inbox.encode()
        self._on_frames = on_frames
        self.batch_max = batch_max
        self.block_ms = block_ms
        self._history_from: bytes | None = b"0"
        self._last_read = b"0"
        # The reader's blocking XREADGROUP speaks RESP on a socket of its own (coredis costs
        # ~300 us of Python per command, a trio stream round trip ~50 us).
        self._reader_wire = RespWire(link.url)
        self._blocking_read = encode_command([
            "XREADGROUP", "GROUP", self.group, node, "COUNT", batch_max, "BLOCK", block_ms,
            "STREAMS", self.inbox, ">",
        ])
        self._malformed = self._claimed = self._groups = 0

    def statistics(self) -> TransportStatistics:
        return TransportStatistics(
            sent=self._sent,
            buffered=self._pending,
            flushes=self._flushes,
            direct=self._direct,
            carried=self._carried_writes,
            send_errors=self._send_errors,
            received=self._received,
            acked=self._acked,
            malformed=self._malformed,
            claimed=self._claimed,
            groups_created=self._groups,
        )

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
                try:  # the first attempt without RedisLink.call's wrapping: the hot path
                    batch = await self._read(acks)
                except TRANSIENT_ERRORS as exc:
                    batch = await self._link.call(self._reader(acks), failed=exc)
                else:
                    if not self._link.ready:
                        self._link.succeeded()
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
            carry = self._acks.pop(self.inbox, None)
            if carry:
                self._acks_in_flight += 1
            if not batch:
                self._history_from = None
                if self._inflight and not self._pumping:
                    # Idle: confirm the last direct writes (the next ones would, else).
                    try:
                        self._take_replies()
                    except RespConnectionError:
                        self._writer_lost()
                continue
            self._last_read = batch[-1].entry_id
            if self._history_from is not None:
                self._history_from = self._last_read
            self._received += len(batch)
            self._holding = True  # what handlers send now rides with the next read
            try:
                handled = self._on_frames(batch)
            finally:
                self._holding = False
            if handled is not None:
                self._release_held()  # the handling awaits: what it sent goes out now
                await handled

    def _reader(
        self, acks: list[list[bytes] | None]
    ) -> Callable[[object], Awaitable[list[Inbound]]]:
        """The reads for ``RedisLink.call`` after a first attempt failed: our pending history
        first (the failed read's reply may have been lost), then new entries (blocking).

        The read carries ``acks[0]``, acks of our inbox (``XACK`` + ``XDEL`` ahead of the
        ``XREADGROUP`` in one write): they cost no round trip of their own. Once written,
        ``acks[0]`` becomes ``None``."""

        async def read(_: object) -> list[Inbound]:
            if self._history_from is None:
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
        carried: _Batch | None = None
        try:
            if not wire.connected:
                await wire.connect()
            # What the last batch's handlers sent (the replies of asks) goes first, same write.
            skip = 0
            built = self._carry(wire.low_water) if self._out else None
            if built is not None:
                carried, frames = built
                payload = frames + payload
                skip = carried.count
            wire.write_nowait(payload)
            if wire.unsent:
                await wire.drain()
            # Wake at a lower bound of all the replies, which the carried ones alone do not
            # reach: they then cost no wake of their own.
            wire.wake_at(_least_reply_bytes(carried) + 8 * (commands > 1) + 5 if skip else 1)
            replies: list[Any] = []
            while True:
                await wire.wait_readable()  # a blocking read: nothing is there yet
                got = wire.read_nowait()
                if skip:
                    replies += got
                    if len(replies) < skip:
                        wire.wake_now()  # woken early (_carried_wanted): any byte is news
                        continue
                    self._carried_written(replies[:skip])
                    got, replies, skip = replies[skip:], [], 0
                for reply in got:
                    replies.append(reply)
                    if len(replies) == 2 and ids:
                        self._own_acks_written(acks, reply)
                if len(replies) == commands:
                    break
                wire.wake_now()  # the rest may be shorter than the mark: any byte is news
        except BaseException:
            wire.close()  # a read may still be pending on it
            if self._carried is not None:
                self._carried_lost()
            raise
        reply = replies[-1]
        if isinstance(reply, RespError):
            if reply.kind in _TRANSIENT_REPLIES:  # retried by RedisLink.call
                raise RespConnectionError(f"redis is not ready: {reply}") from reply
            raise reply
        return _inbound_resp(inbox, reply)

    def _carried_wanted(self) -> None:
        self._reader_wire.wake_now()

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
        self._made_progress()

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


def _least_reply_bytes(batch: _Batch | None) -> int:
    """A lower bound of the size of ``batch``'s replies in RESP: an XADD replies with an entry
    ID (``$15\r\n``, 13 digits of milliseconds, ``-``, the sequence, CRLF: 22 bytes and up) or
    an error (19 bytes and up: Redis errors carry a sentence), a script call with 4 bytes and
    up, XACK and XDEL with an integer (``:0\r\n``, 4 bytes)."""
    if batch is None:
        return 0
    least = 8 * len(batch.acks)
    for _, chunk in batch.chunks:
        least += 19 if len(chunk) == 1 else 4
    return least


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
