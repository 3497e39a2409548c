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
  second (open model, latency from the scheduled send time until the last step): ``POST`` an
  answer to another user's question, then wait for the author's ``gamification.xp.earned``
  frame on its ``/ws/notifications`` socket, held open from before the runs
  (:mod:`bench._load_ws`). The frame is matched to its write by cause: its payload's
  ``source_event_id`` is the answer's ``knowledge.answer.submitted`` event. The profile
  publishes it after the XP is journaled and the leaderboards are told, so it covers answer →
  XP → leaderboard → socket push. Target p99 <= 50 ms. Baseline: the ceiling's route offered
  at the same rate (the floor of a request's latency on this setup). Phases: ``POST
  answered`` (``write_post_p99_ms``: the POST's own part) and ``socket push``. A write whose
  frame does not arrive within ``timeout_seconds`` is a ``timeout``; one whose socket the
  server closed is a ``socket dropped`` error.

  The profile emits ``xp.earned`` only for an award above 0, and the daily cap (500 XP, less
  the welcome bonus and the question each user posts) stops awards after 45 answers a user
  in a UTC day: so every write run draws its users round robin from enough users that none
  writes more than ``writes_per_user`` (40) times in the whole bench. The users beyond
  ``users`` are registered with the others, concurrently, before anything is measured.
- ``write_throughput``: the same write back to back on ``get_workers`` connections (closed
  loop): what the write path sustains, to read ``write_p99_ms`` against.
- ``write_achieved_rate``: successful writes a second against the rate offered (target 0.99x),
  and ``http_errors``: every failed request of every run (target 0).
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Final

import attrs

from bench._harness import Figure, Progress
from bench._http_ceiling import PATH as CEILING_PATH
from bench._load import Failed, LoadResult, Operation, best, expect, mark, run_closed, run_open
from bench._load_api import Question, User, answer, answer_event_id, populate
from bench._load_client import Pool
from bench._load_node import Servers
from bench._load_ws import PATH as NOTIFICATIONS
from bench._load_ws import Notifications, open_notifications
from bench._report import LastReport, LoadReport, http_versions, ms
from bench.cluster import AbsoluteFigure

__all__ = [
    "DEFAULT",
    "QUICK",
    "AnswerWrite",
    "Counts",
    "ceiling_open",
    "details",
    "measure",
    "run",
    "versions",
    "write_extras",
]

CEILING_NAME: Final = "bare quart-trio route, same Hypercorn setup (ceiling)"
WRITE_NOTE: Final = ("write = POST an answer, then the author's gamification.xp.earned frame "
                     "on /ws/notifications (answer -> XP -> leaderboard -> socket push), matched "
                     "to the write by its source_event_id")


@attrs.frozen(kw_only=True)
class Counts:
    """How much load each measurement sends, for how long, and how many rounds."""

    users: int  # registered before the runs; the reads spread over them
    get_workers: int  # closed-loop connections
    get_seconds: float
    warmup_seconds: float
    rounds: int
    write_rate: float  # writes offered a second
    write_seconds: float
    baseline_seconds: float  # the ceiling route offered at write_rate
    write_closed_seconds: float  # writes back to back on get_workers connections
    write_closed_max: int  # at most this many of them (each user's XP budget is shared)
    write_connections: int = 64
    timeout_seconds: float = 10.0
    #: Answers a user writes at most (under the 45 a day that still pay XP, see the module).
    writes_per_user: int = 40

    @property
    def writers(self) -> int:
        """How many users the writes need: ``users``, or more for the writes' XP budget."""
        writes = math.floor(self.write_rate * self.write_seconds) + self.write_closed_max
        return max(self.users, -(-writes // self.writes_per_user), 2)


DEFAULT = Counts(users=40, get_workers=16, get_seconds=5.0, warmup_seconds=1.0, rounds=2,
                 write_rate=200.0, write_seconds=15.0, baseline_seconds=5.0,
                 write_closed_seconds=5.0, write_closed_max=1000)
QUICK = Counts(users=12, get_workers=16, get_seconds=2.0, warmup_seconds=0.5, rounds=1,
               write_rate=200.0, write_seconds=3.0, baseline_seconds=2.0,
               write_closed_seconds=2.0, write_closed_max=400, timeout_seconds=5.0)


# --------------------------------------------------------------------------- operations


def _get(pool: Pool, target: str) -> Operation:
    async def get() -> None:
        expect(await pool.request("GET", target), 200)
    return get


@attrs.define
class AnswerWrite:
    """The write: the next user round robin answers the question of the user after it, then
    waits for its ``gamification.xp.earned`` frame caused by that answer (see the module).

    Users are drawn by this object's own count, not the request number, so the closed and the
    open run share each user's budget of ``writes_per_user`` answers; a write past it fails as
    ``over xp budget`` (the counts are sized so that none does).
    """

    pool: Pool
    users: list[User]
    questions: list[Question]  # questions[k] asked by users[k]
    sockets: Notifications
    writes_per_user: int
    sent: int = 0

    def __call__(self, i: int) -> tuple[str, Operation]:
        k = self.sent % len(self.users)
        budget_left = self.sent < self.writes_per_user * len(self.users)
        self.sent += 1
        user, question = self.users[k], self.questions[(k + 1) % len(self.users)]
        assert question.author != user.uid

        async def write() -> None:
            if not budget_left:
                raise Failed("over xp budget", f"{user.handle} already wrote "
                             f"{self.writes_per_user} answers: register more users")
            answer_id = await answer(self.pool, user, question.id)
            mark("POST answered")
            await self.sockets.wait(user, answer_event_id(answer_id))
            mark("socket push")

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
        progress.step(f"registering {counts.writers} users (production password hashing)")
        users, questions = await populate(pool, counts.writers, prefix=f"bh{run_id}_")
    rounds = await _throughput_rounds(servers, counts, users[: counts.users], progress)
    ceiling, subject = best(rounds.ceiling), best(rounds.subject)

    baseline = await ceiling_open(servers, rate=counts.write_rate,
                                  seconds=counts.baseline_seconds,
                                  connections=counts.write_connections, progress=progress)
    progress.step(f"opening {len(users)} {NOTIFICATIONS} sockets")
    async with Pool(servers.node, counts.write_connections) as pool, \
            open_notifications(servers.node, users) as sockets:
        writes = AnswerWrite(pool, users, questions, sockets, counts.writes_per_user)
        # Closed first: it leaves no backlog behind (each write waits for its push).
        closed = await run_closed(
            writes, name="write closed loop", workers=counts.get_workers,
            seconds=counts.write_closed_seconds, max_requests=counts.write_closed_max,
            timeout_seconds=counts.timeout_seconds, progress=progress)
        cpu = time.process_time()
        write = await run_open(
            writes, name=f"write at {counts.write_rate:g}/s", rate=counts.write_rate,
            seconds=counts.write_seconds, timeout_seconds=counts.timeout_seconds,
            connections=counts.write_connections, progress=progress)
        write.notes.append(f"the bench process (load and sockets) used "
                           f"{time.process_time() - cpu:.2f} s of CPU over the run's "
                           f"{write.seconds:.2f} s")
        write.notes.append(
            f"{len(users)} {NOTIFICATIONS} sockets held (one per user, at most "
            f"{counts.writes_per_user} writes each); {sockets.frames:,} event frames read, "
            f"{sockets.matched:,} matched to writes, {sockets.unclaimed:,} unclaimed (pushes "
            f"of writes already timed out, other events), {sockets.dropped} sockets dropped")
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
                target=f"<= 50 ms at {counts.write_rate:g}/s offered (POST to socket "
                       "push)"))
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
