"""``python -m bench http``: the gateway's read throughput and write latency, beside its ceiling.

Two servers, each in its own process on a free loopback port: the bench node (a real
``tektree run`` on ``supervisor.toml``, see :mod:`bench._load_node`; or any node given by
``--url``) and the ceiling (:mod:`bench._http_ceiling`: a bare quart-trio route returning fixed
JSON on the same Hypercorn setup). The load comes from this process (:mod:`bench._load`, over
the small keep-alive client of :mod:`bench._load_client`). Figures:

- ``profile_get_throughput``: ``GET /api/v1/users/{uid}/gamification`` over the bench's users,
  closed loop on ``get_workers`` connections, against the ceiling's route in the same way;
  target >= 0.7x the ceiling. Rounds interleave ceiling and subject; the best of each is kept.
  ``profile_get_p50_ms`` to ``profile_get_p999_ms``: the same closed loop's latencies.
- ``write_p99_ms`` (and p50, p95, p99.9, max): a write offered at ``write_rate`` requests a
  second (open model, latency from the scheduled send time): ``POST`` an answer to another
  user's question, then read the author's profile until it shows the answer
  (``counters.answers_submitted``; the XP, the counter and the leaderboard update arrive
  together through the outbox relay). Target p99 <= 50 ms. The socket push
  (``/ws/notifications``) is not in it yet: it joins as one more awaited step of
  :class:`AnswerWrite` (see :meth:`AnswerWrite.__call__`) once the WebSocket gateway lands.
  Baseline: the ceiling's route offered at the same rate (the floor of a request's latency
  on this setup). ``write_post_p99_ms``: the POST's own part.
- ``write_throughput``: the same write back to back on ``get_workers`` connections (closed
  loop): what the write path sustains, to read ``write_p99_ms`` against.
- ``write_achieved_rate``: successful writes a second against the rate offered (target 0.99x),
  and ``http_errors``: every failed request of every run (target 0).
"""

from __future__ import annotations

import secrets
from typing import Final

import attrs
import trio

from bench._harness import Figure, Progress
from bench._http_ceiling import PATH as CEILING_PATH
from bench._load import LoadResult, Operation, best, expect, mark, run_closed, run_open
from bench._load_api import Question, User, answer, populate, profile
from bench._load_client import Pool
from bench._load_node import Servers
from bench._report import LastReport, LoadReport, http_versions, ms
from bench.cluster import AbsoluteFigure

__all__ = [
    "DEFAULT",
    "QUICK",
    "AnswerWrite",
    "Counts",
    "ProfileWatch",
    "ceiling_open",
    "details",
    "measure",
    "run",
    "versions",
    "write_extras",
]

CEILING_NAME: Final = "bare quart-trio route, same Hypercorn setup (ceiling)"
WRITE_NOTE: Final = ("write = POST an answer, then the author's profile read until it shows "
                     "the answer (XP and counters applied through the outbox relay); the "
                     "socket push is not measured yet (the WebSocket gateway is being built "
                     "on another branch)")


@attrs.frozen(kw_only=True)
class Counts:
    """How much load each measurement sends, for how long, and how many rounds."""

    users: int  # registered before the runs; reads and writes spread over them
    get_workers: int  # closed-loop connections
    get_seconds: float
    warmup_seconds: float
    rounds: int
    write_rate: float  # writes offered a second
    write_seconds: float
    baseline_seconds: float  # the ceiling route offered at write_rate
    write_closed_seconds: float  # writes back to back on get_workers connections
    write_connections: int = 64
    timeout_seconds: float = 10.0
    xp_poll_seconds: float = 0.001


DEFAULT = Counts(users=40, get_workers=16, get_seconds=5.0, warmup_seconds=1.0, rounds=2,
                 write_rate=200.0, write_seconds=15.0, baseline_seconds=5.0,
                 write_closed_seconds=5.0)
QUICK = Counts(users=12, get_workers=16, get_seconds=2.0, warmup_seconds=0.5, rounds=1,
               write_rate=200.0, write_seconds=3.0, baseline_seconds=2.0,
               write_closed_seconds=2.0, timeout_seconds=5.0)


# --------------------------------------------------------------------------- operations


def _get(pool: Pool, target: str) -> Operation:
    async def get() -> None:
        expect(await pool.request("GET", target), 200)
    return get


@attrs.define
class ProfileWatch:
    """Waits until users' profiles show a number of answers, reading them sparingly.

    The reads are load the product would not see with a socket push, so they are bounded: one
    read per user in flight at most (whoever waits and finds none in flight reads; the others
    wait for its result), ``max_reads`` in flight in all, and after a read that shows too
    little, a pause of ``relative_pause`` times the time waited so far (at least
    ``poll_seconds``). So a write is seen within about 10% of its latency (or 1 ms), and a
    backlog of writes waiting for a lagging relay costs the server few reads.
    """

    pool: Pool
    poll_seconds: float
    relative_pause: float = 0.1
    max_reads: int = 4
    seen: dict[str, int] = attrs.Factory(dict)
    reads: int = 0
    _reading: dict[str, trio.Event] = attrs.Factory(dict)
    _room: trio.Semaphore = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._room = trio.Semaphore(self.max_reads)

    async def read(self, user: User) -> int:
        """The profile's ``counters.answers_submitted`` now."""
        async with self._room:
            body = await profile(self.pool, user.uid, user.token)
        self.reads += 1
        count = int(body["counters"]["answers_submitted"])
        self.seen[user.uid] = max(self.seen.get(user.uid, 0), count)
        return count

    async def wait(self, user: User, need: int) -> None:
        """Until ``user``'s profile shows at least ``need`` answers."""
        began = trio.current_time()
        while self.seen.get(user.uid, 0) < need:
            reading = self._reading.get(user.uid)
            if reading is not None:
                await reading.wait()
                continue
            done = self._reading[user.uid] = trio.Event()
            try:
                count = await self.read(user)
            finally:
                del self._reading[user.uid]
                done.set()
            if count < need:
                waited = trio.current_time() - began
                await trio.sleep(max(self.poll_seconds, self.relative_pause * waited))


@attrs.define
class AnswerWrite:
    """The write: user ``i % n`` answers the question of the next user, then waits until its
    profile shows the answer (:class:`ProfileWatch`).

    Each user counts its answers answered (201) so far; the write is done when the profile's
    ``counters.answers_submitted`` reaches the user's starting count plus that number. Two
    writes of one user in flight at once could see each other's effect: with ``n`` users, a
    user writes once every ``n / rate`` seconds, far above the latencies measured, and any
    overlap could only hide one write's wait behind another's.
    """

    pool: Pool
    users: list[User]
    questions: list[Question]
    watch: ProfileWatch
    answered: dict[str, int] = attrs.Factory(dict)
    start: dict[str, int] = attrs.Factory(dict)

    async def prepare(self) -> None:
        """Read every user's starting count."""
        for user in self.users:
            self.start[user.uid] = await self.watch.read(user)
            self.answered[user.uid] = 0

    def __call__(self, i: int) -> tuple[str, Operation]:
        user = self.users[i % len(self.users)]
        question = self.questions[(i + 1) % len(self.questions)]
        assert question.author != user.uid

        async def write() -> None:
            await answer(self.pool, user, question.id)
            mark("POST answered")
            self.answered[user.uid] += 1
            await self.watch.wait(user, self.start[user.uid] + self.answered[user.uid])
            mark("XP visible")
            # The socket push joins here: await the user's gamification.xp.earned frame (held
            # open on /ws/notifications from prepare()). The profile emits that event only for
            # an award above 0, and the daily cap stops awards after about 45 answers a user:
            # that measure needs about one fresh user per 40 writes of the run.

        return "write", write


async def ceiling_open(servers: Servers, *, rate: float, seconds: float, connections: int,
                       progress: Progress | None, timeout_seconds: float = 10.0) -> LoadResult:
    """The ceiling's route offered at ``rate`` for ``seconds`` (open model): the floor of a
    request's latency on this setup at that rate, the baseline of latency figures."""
    async with Pool(servers.ceiling, connections) as pool:
        return await run_open(
            lambda i: ("GET /ceiling", _get(pool, CEILING_PATH)),
            name=f"ceiling at {rate:g}/s", rate=rate, seconds=seconds,
            timeout_seconds=timeout_seconds, connections=connections, progress=progress)


# --------------------------------------------------------------------------- the run


@attrs.define
class _Rounds:
    ceiling: list[LoadResult] = attrs.Factory(list)
    subject: list[LoadResult] = attrs.Factory(list)



async def _throughput_rounds(servers: Servers, counts: Counts, users: list[User],
                             progress: Progress) -> _Rounds:
    rounds = _Rounds()
    targets = [f"/api/v1/users/{u.uid}/gamification" for u in users]
    async with Pool(servers.ceiling, counts.get_workers) as ceiling, \
            Pool(servers.node, counts.get_workers) as node:
        def ceiling_plan(i: int) -> tuple[str, Operation]:
            return "GET /ceiling", _get(ceiling, CEILING_PATH)

        def profile_plan(i: int) -> tuple[str, Operation]:
            return "GET profile", _get(node, targets[i % len(targets)])

        for plan, name in ((ceiling_plan, "warm-up ceiling"), (profile_plan, "warm-up profile")):
            await run_closed(plan, name=name, workers=counts.get_workers,
                             seconds=counts.warmup_seconds, progress=progress)
        for r in range(1, counts.rounds + 1):
            label = f" (round {r}/{counts.rounds})"
            rounds.ceiling.append(await run_closed(
                ceiling_plan, name="ceiling closed loop" + label, workers=counts.get_workers,
                seconds=counts.get_seconds, timeout_seconds=counts.timeout_seconds,
                progress=progress))
            rounds.subject.append(await run_closed(
                profile_plan, name="profile GET closed loop" + label,
                workers=counts.get_workers, seconds=counts.get_seconds,
                timeout_seconds=counts.timeout_seconds, progress=progress))
    return rounds


async def measure(servers: Servers, counts: Counts, progress: Progress) -> LoadReport:
    """Every run against ``servers``; the figures and the runs behind them."""
    report = LoadReport(bench="http")
    run_id = secrets.token_hex(3)
    async with Pool(servers.node, counts.write_connections) as pool:
        progress.step(f"registering {counts.users} users (production password hashing)")
        users, questions = await populate(pool, counts.users, prefix=f"bh{run_id}_")
    rounds = await _throughput_rounds(servers, counts, users, progress)
    ceiling, subject = best(rounds.ceiling), best(rounds.subject)

    baseline = await ceiling_open(servers, rate=counts.write_rate,
                                  seconds=counts.baseline_seconds,
                                  connections=counts.write_connections, progress=progress)
    async with Pool(servers.node, counts.write_connections) as pool:
        writes = AnswerWrite(pool, users, questions, ProfileWatch(pool, counts.xp_poll_seconds))
        await writes.prepare()
        # Closed first: it leaves no backlog behind (each write waits for its XP).
        closed = await run_closed(
            writes, name="write closed loop", workers=counts.get_workers,
            seconds=counts.write_closed_seconds, timeout_seconds=counts.timeout_seconds,
            progress=progress)
        write = await run_open(
            writes, name=f"write at {counts.write_rate:g}/s", rate=counts.write_rate,
            seconds=counts.write_seconds, timeout_seconds=counts.timeout_seconds,
            connections=counts.write_connections, progress=progress)
        write.notes.append(f"{writes.watch.reads:,} profile reads to see the writes land")
    write.notes.append(WRITE_NOTE)
    report.notes.append(f"write_throughput: the write back to back on {counts.get_workers} "
                        "connections (closed loop): what the write path sustains here")

    report.runs.extend((*rounds.ceiling, *rounds.subject, closed, baseline, write))
    report.plotted.extend((ceiling, subject, closed, baseline, write))
    report.figures.extend(_figures(counts, ceiling, subject, closed, baseline, write, report))
    return report


def _figures(counts: Counts, ceiling: LoadResult, subject: LoadResult, closed: LoadResult,
             baseline: LoadResult, write: LoadResult, report: LoadReport) -> list[Figure]:
    figures: list[Figure] = [
        Figure(name="profile_get_throughput", value=subject.achieved_rate, unit="req/s",
               better="higher", baseline=ceiling.achieved_rate, baseline_name=CEILING_NAME,
               target_ratio=0.7, target=">= 0.7x ceiling"),
    ]
    for key, p in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9)):
        figures.append(Figure(
            name=f"profile_get_{key}_ms", value=ms(subject.total.percentile_us(p)), unit="ms",
            better="lower", baseline=ms(ceiling.total.percentile_us(p)),
            baseline_name=f"{CEILING_NAME}, closed loop, {counts.get_workers} connections"))
    (writes,) = (s for s in write.ops.values())
    ceiling_name = f"{CEILING_NAME} at {counts.write_rate:g}/s offered"
    for key, p in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9),
                   ("max", 100.0)):
        value = ms(writes.latency.percentile_us(p))
        base = ms(baseline.total.percentile_us(p))
        if key == "p99":
            figures.append(AbsoluteFigure(
                name="write_p99_ms", value=value, unit="ms", better="lower", baseline=base,
                baseline_name=ceiling_name, threshold=50.0,
                target=f"<= 50 ms at {counts.write_rate:g}/s offered (POST + XP visible; "
                       "no socket push yet)"))
        else:
            figures.append(Figure(name=f"write_{key}_ms", value=value, unit="ms",
                                  better="lower", baseline=base, baseline_name=ceiling_name))
    post = write.phases.get("write: POST answered")
    if post is not None:
        figures.append(Figure(name="write_post_p99_ms",
                              value=ms(post.latency.percentile_us(99)), unit="ms",
                              better="lower", baseline=ms(baseline.total.percentile_us(99)),
                              baseline_name=ceiling_name))
    figures.append(Figure(
        name="write_throughput", value=round(closed.achieved_rate, 2), unit="req/s",
        better="higher"))
    figures.append(Figure(
        name="write_achieved_rate", value=round(write.achieved_rate, 2), unit="req/s",
        better="higher", baseline=counts.write_rate, baseline_name="rate offered",
        target_ratio=0.99, target=">= 0.99x offered"))
    failed = sum(r.failed + r.unsent for r in report.runs)
    figures.append(AbsoluteFigure(name="http_errors", value=float(failed), unit="requests",
                                  better="lower", threshold=0.0, target="0 (every run)"))
    return figures


_last = LastReport()
details = _last.details
write_extras = _last.write_extras
versions = http_versions


async def run(quick: bool, progress: Progress, url: str | None = None) -> list[Figure]:
    """Start the servers (or use ``url``) and measure."""
    counts = QUICK if quick else DEFAULT
    return await _last.measure(lambda servers: measure(servers, counts, progress), progress, url)
