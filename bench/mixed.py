"""``python -m bench mixed``: a realistic mix of TekTree's requests at a target rate (open model).

Registered users (each with a question and an answer to another's) are seeded first; then
requests are offered at ``rate`` a second for ``seconds``, each drawn from the mix
(:data:`WEIGHTS`, laid out exactly over every 1,000 requests by :class:`~bench._load.WeightedMix`):
reads of profiles and leaderboards dominate, then votes and answers, questions, acceptances,
and logins and registrations (through the production password hashing). What one request
creates (a user, a question, an answer) is used by the requests after it. Latency counts from
the scheduled send time; the figures give the overall percentiles and each operation's p99,
beside the ceiling route (a bare quart-trio route on the same Hypercorn setup) offered at the
same rate; the details and the Markdown summary have every operation's p50 to max and errors.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from bench._harness import Figure, Progress
from bench._load import LoadResult, Operation, WeightedMix, run_open
from bench._load_api import (
    Question,
    User,
    accept,
    answer,
    ask,
    leaderboard,
    login,
    populate,
    profile,
    register,
    vote,
)
from bench._load_client import Pool
from bench._load_node import Servers
from bench._report import LastReport, LoadReport, http_versions, ms
from bench.cluster import AbsoluteFigure
from bench.http import CEILING_NAME, ceiling_open

__all__ = ["DEFAULT", "QUICK", "WEIGHTS", "Counts", "Mix", "details", "measure", "run", "versions",
           "write_extras"]

#: Shares of the mix, in percent.
WEIGHTS: Final[Mapping[str, float]] = {
    "read profile": 33, "read leaderboard": 22, "vote": 15, "answer": 14, "ask": 7,
    "accept": 6, "login": 2, "register": 1,
}


@attrs.frozen(kw_only=True)
class Counts:
    users: int  # seeded before the run
    rate: float  # requests offered a second
    seconds: float
    baseline_seconds: float
    connections: int = 64
    timeout_seconds: float = 10.0
    mix_slots: int = 1000  # the mix is exact over every this many requests


DEFAULT = Counts(users=30, rate=80.0, seconds=45.0, baseline_seconds=5.0)
QUICK = Counts(users=8, rate=80.0, seconds=8.0, baseline_seconds=2.0, timeout_seconds=5.0)


@attrs.define
class _Answer:
    id: str
    question: Question
    author: str  # uid


@attrs.define
class Mix:
    """The mix's operations over a shared, growing world of users, questions and answers."""

    pool: Pool
    users: list[User]
    questions: list[Question]
    prefix: str
    answers: list[_Answer] = attrs.Factory(list)
    rng: random.Random = attrs.Factory(lambda: random.Random(7))
    by_uid: dict[str, User] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        self.by_uid = {u.uid: u for u in self.users}

    async def seed_answers(self) -> None:
        """Each seeded user answers the next one's question."""
        for k, user in enumerate(self.users):
            question = self.questions[(k + 1) % len(self.questions)]
            self.answers.append(_Answer(await answer(self.pool, user, question.id),
                                        question, user.uid))

    def plan(self, slots: int = 1000) -> WeightedMix:
        operations: dict[str, Callable[[int], Operation]] = {
            "read profile": self.read_profile, "read leaderboard": self.read_leaderboard,
            "vote": self.vote, "answer": self.answer, "ask": self.ask, "accept": self.accept,
            "login": self.login, "register": self.register,
        }
        return WeightedMix(weights=WEIGHTS, operations=operations, slots=slots)

    def _user(self) -> User:
        return self.rng.choice(self.users)

    def _other(self, items: list[Any], uid: str, author: Callable[[Any], str]) -> Any:
        for _ in range(8):
            item = self.rng.choice(items)
            if author(item) != uid:
                return item
        return next(item for item in items if author(item) != uid)

    def read_profile(self, i: int) -> Operation:
        reader, target = self._user(), self._user()

        async def op() -> None:
            await profile(self.pool, target.uid, reader.token)
        return op

    def read_leaderboard(self, i: int) -> Operation:
        reader = self._user()
        board = "weekly" if i % 4 == 0 else "global"

        async def op() -> None:
            await leaderboard(self.pool, board, 20, reader.token)
        return op

    def vote(self, i: int) -> Operation:
        voter = self._user()
        target = self._other(self.answers, voter.uid, lambda a: a.author)

        async def op() -> None:
            await vote(self.pool, voter, "answer", target.id)
        return op

    def answer(self, i: int) -> Operation:
        author = self._user()
        question = self._other(self.questions, author.uid, lambda q: q.author)

        async def op() -> None:
            self.answers.append(_Answer(await answer(self.pool, author, question.id),
                                        question, author.uid))
        return op

    def ask(self, i: int) -> Operation:
        author = self._user()

        async def op() -> None:
            self.questions.append(await ask(self.pool, author, i))
        return op

    def accept(self, i: int) -> Operation:
        chosen = self.rng.choice(self.answers)
        asker = self.by_uid[chosen.question.author]

        async def op() -> None:
            await accept(self.pool, asker, chosen.id)
        return op

    def login(self, i: int) -> Operation:
        user = self._user()

        async def op() -> None:
            await login(self.pool, user)
        return op

    def register(self, i: int) -> Operation:
        handle = f"{self.prefix}n{i}"

        async def op() -> None:
            user = await register(self.pool, handle)
            self.by_uid[user.uid] = user
            self.users.append(user)
        return op



async def measure(servers: Servers, counts: Counts, progress: Progress) -> LoadReport:
    """Seed, then the ceiling and the mix at ``counts.rate``; the figures and the runs."""
    report = LoadReport(bench="mixed")
    prefix = f"bm{secrets.token_hex(3)}_"
    async with Pool(servers.node, counts.connections) as pool:
        progress.step(f"seeding {counts.users} users with a question and an answer each")
        users, questions = await populate(pool, counts.users, prefix=prefix)
        mix = Mix(pool, users, questions, prefix)
        await mix.seed_answers()
        baseline = await ceiling_open(servers, rate=counts.rate,
                                      seconds=counts.baseline_seconds,
                                      connections=counts.connections, progress=progress)
        result = await run_open(
            mix.plan(counts.mix_slots), name=f"mix at {counts.rate:g}/s", rate=counts.rate,
            seconds=counts.seconds, timeout_seconds=counts.timeout_seconds,
            connections=counts.connections, progress=progress)
    result.notes.append("mix (% of requests): " + ", ".join(
        f"{name} {share:g}" for name, share in WEIGHTS.items()))
    result.notes.append("login and register hash the password with the production argon2id "
                        "settings (~150 ms of CPU each here, on up to 4 lanes): while one "
                        "runs the node has less CPU for everything else, which shows in every "
                        "operation's tail")
    report.runs.extend([baseline, result])
    report.figures.extend(_figures(counts, baseline, result))
    return report


def _figures(counts: Counts, baseline: LoadResult, result: LoadResult) -> list[Figure]:
    ceiling = f"{CEILING_NAME} at {counts.rate:g}/s offered"
    figures: list[Figure] = [Figure(
        name="mixed_achieved_rate", value=round(result.achieved_rate, 2), unit="req/s",
        better="higher", baseline=counts.rate, baseline_name="rate offered", target_ratio=0.99,
        target=">= 0.99x offered")]
    for key, p in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9),
                   ("max", 100.0)):
        figures.append(Figure(
            name=f"mixed_{key}_ms", value=ms(result.total.percentile_us(p)), unit="ms",
            better="lower", baseline=ms(baseline.total.percentile_us(p)),
            baseline_name=ceiling))
    base99 = ms(baseline.total.percentile_us(99))
    for name in WEIGHTS:
        stats = result.ops.get(name)
        value = 0.0 if stats is None else ms(stats.latency.percentile_us(99))
        figures.append(Figure(name=f"mixed_{name.replace(' ', '_')}_p99_ms", value=value,
                              unit="ms", better="lower", baseline=base99,
                              baseline_name=ceiling))
    failed = baseline.failed + baseline.unsent + result.failed + result.unsent
    figures.append(AbsoluteFigure(name="mixed_errors", value=float(failed), unit="requests",
                                  better="lower", threshold=0.0, target="0"))
    return figures


_last = LastReport()
details = _last.details
write_extras = _last.write_extras
versions = http_versions


async def run(quick: bool, progress: Progress, url: str | None = None) -> list[Figure]:
    """Start the servers (or use ``url``) and measure."""
    counts = QUICK if quick else DEFAULT
    return await _last.measure(lambda servers: measure(servers, counts, progress), progress, url)
