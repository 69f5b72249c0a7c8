"""Generate a year of contact-centre history, for the wallboard and report benchmarks.

    python manage.py generate_history                        # 1,000,000 interactions, 5M messages
    python manage.py generate_history --interactions 100000  # smaller (5 messages each)
    python manage.py generate_history --scale 0.1            # the same, as a share of a full year
    python manage.py generate_history --months 12 --messages 2000000 --seed 7

Three French public bodies (a CAF, a CPAM, a mairie), each with its teams, queues and agents
(created once, found again on a second run), and their contacts over ``--months`` months up to
now: every channel (phone, SMS, e-mail, web chat), office-hour and weekday peaks, seasonal
months, answered, abandoned (short and long), closed without an agent, surveys (CSAT), and a
live tail today (contacts waiting, agents handling some). Each interaction gets the status
changes reports read (queued, offered, answered, wrap-up, closed or abandoned) and its messages.

Rows are written with PostgreSQL ``COPY`` (psycopg 3) in batches, then the wallboard's counters
of today are rebuilt and every past day is rolled up for reports (``supervision.rollup``). Meant
for a benchmark or demo database, not a live one: it adds history, it never deletes any.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction
from django.utils import timezone

from agents.models import AgentProfile
from configuration.models import Queue, Team
from interactions.channels import Channel
from interactions.models import Interaction, InteractionTransition, Message
from organisations.models import Organisation
from supervision.models import SatisfactionResponse
from supervision.periods import PARIS, day_bounds, local_day
from supervision.reports import ZERO, Figures, InteractionFacts, figures_of
from supervision.rollup import ensure_built, write_day_stats
from supervision.selectors import WAITING

FULL_INTERACTIONS = 1_000_000
MESSAGES_PER_INTERACTION = 5
BATCH = 20_000

# name, slug, queues (code, name, channels, answer target s)
BODIES: list[tuple[str, str, list[tuple[str, str, tuple[str, ...], int]]]] = [
    (
        "CAF de la Gironde",
        "hist-caf-gironde",
        [
            ("caf-allocations", "Allocations familiales", ("voice", "email", "chat"), 60),
            ("caf-logement", "Aides au logement (APL)", ("voice", "email", "sms"), 60),
            ("caf-rsa", "RSA et prime d'activité", ("voice", "chat", "sms"), 90),
            ("caf-accueil", "Accueil et orientation", ("voice", "chat", "email", "sms"), 45),
        ],
    ),
    (
        "CPAM de Loire-Atlantique",
        "hist-cpam-loire-atlantique",
        [
            ("cpam-remboursements", "Remboursements de soins", ("voice", "email", "chat"), 60),
            ("cpam-carte-vitale", "Carte Vitale", ("voice", "sms", "email"), 60),
            ("cpam-arrets", "Arrêts de travail et indemnités", ("voice", "email"), 120),
            ("cpam-css", "Complémentaire santé solidaire", ("voice", "chat", "sms"), 90),
        ],
    ),
    (
        "Mairie de Montpellier",
        "hist-mairie-montpellier",
        [
            ("mairie-etat-civil", "État civil", ("voice", "email", "chat"), 60),
            ("mairie-ecoles", "Inscriptions scolaires", ("voice", "email", "sms"), 60),
            ("mairie-urbanisme", "Urbanisme", ("voice", "email"), 120),
            ("mairie-proprete", "Propreté et voirie", ("voice", "sms", "chat", "email"), 45),
        ],
    ),
]
AGENTS_PER_QUEUE = 12

# channel -> (share of contacts, mean wait s, mean handling s, abandon share, unanswered-close
# share, mean messages): phone calls leave a note or two, chats and e-mail threads many lines.
CHANNEL_PROFILE: dict[str, tuple[float, float, float, float, float, float]] = {
    "voice": (0.45, 55.0, 330.0, 0.11, 0.0, 1.5),
    "chat": (0.20, 40.0, 540.0, 0.08, 0.02, 9.0),
    "email": (0.20, 14_400.0, 600.0, 0.0, 0.06, 6.0),
    "sms": (0.15, 1_800.0, 300.0, 0.0, 0.05, 7.0),
}
# Month of the year -> relative volume (rentrée and January peaks, quiet August).
MONTH_WEIGHT = {1: 1.2, 2: 1.0, 3: 1.05, 4: 0.95, 5: 0.9, 6: 1.0, 7: 0.8, 8: 0.6, 9: 1.35}
MONTH_WEIGHT |= {10: 1.15, 11: 1.05, 12: 0.85}
WEEKDAY_WEIGHT = (1.3, 1.1, 1.0, 1.05, 0.95, 0.25, 0.08)
# Local hour -> relative volume (office hours, a lunchtime dip; e-mail and SMS all day).
HOUR_WEIGHT = [0.05] * 7 + [0.4, 1.4, 1.8, 1.9, 1.6, 0.9, 1.1, 1.6, 1.5, 1.2, 0.7, 0.3]
HOUR_WEIGHT += [0.15, 0.1, 0.08, 0.06, 0.05]

PHRASES = {
    "inbound": [
        "Bonjour, je n'ai pas reçu mon versement ce mois-ci.",
        "Pouvez-vous me dire où en est mon dossier ?",
        "J'ai changé d'adresse, que dois-je faire ?",
        "Je voudrais prendre rendez-vous.",
        "Merci pour votre réponse.",
        "Il me manque une attestation.",
        "Mon numéro de dossier est dans le courrier joint.",
    ],
    "outbound": [
        "Bonjour, je regarde votre dossier.",
        "Votre demande est en cours de traitement.",
        "Vous pouvez déposer la pièce sur votre espace personnel.",
        "Le versement sera effectué sous cinq jours ouvrés.",
        "Je vous ai envoyé le formulaire par courriel.",
        "Bonne journée.",
    ],
    "note": [
        "Appel : dossier vérifié, pièce manquante demandée.",
        "Rappel prévu la semaine prochaine.",
        "Réorienté vers le service compétent.",
    ],
}


# --------------------------------------------------------------------------- COPY helpers


def _text(value: Any) -> str:
    """One value in COPY's text format (only our own values: no tab, newline or backslash)."""
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _default_text(field: models.Field[Any, Any]) -> str:
    import json

    if not field.has_default():
        if field.null:
            return r"\N"
        if isinstance(field, models.CharField | models.TextField):
            return ""
        raise CommandError(f"{field.model.__name__}.{field.name} needs a value")
    value = field.get_default()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return _text(value)


@dataclass
class CopyTable:
    """``COPY table (given columns, then every other column at its default) FROM STDIN``."""

    model: type[models.Model]
    given: Sequence[str]  # field names (attnames), in the order rows give them

    def __post_init__(self) -> None:
        meta = self.model._meta
        by_attname = {f.attname: f for f in meta.concrete_fields}
        rest = [
            f
            for f in meta.concrete_fields
            if f.attname not in self.given
            and not (f.primary_key and f.auto_created)
            and not (f.primary_key and isinstance(f, models.AutoField | models.BigAutoField))
        ]
        self.columns = [by_attname[a].column for a in self.given] + [f.column for f in rest]
        self.tail = "".join("\t" + _default_text(f) for f in rest)
        cols = ", ".join(connection.ops.quote_name(c) for c in self.columns)
        self.sql = f"COPY {connection.ops.quote_name(meta.db_table)} ({cols}) FROM STDIN"

    def write(self, rows: Iterator[Sequence[Any]]) -> int:
        n = 0
        chunk: list[str] = []
        with connection.cursor() as cursor, cursor.cursor.copy(self.sql) as copy:
            for row in rows:
                chunk.append("\t".join(_text(v) for v in row) + self.tail + "\n")
                n += 1
                if len(chunk) >= 5000:
                    copy.write("".join(chunk))
                    chunk = []
            if chunk:
                copy.write("".join(chunk))
        return n


def _reserve_ids(model: type[models.Model], n: int) -> list[int]:
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, n],
        )
        return [r[0] for r in cursor.fetchall()]


# --------------------------------------------------------------------------- the bodies


@dataclass(frozen=True)
class QueueInfo:
    pk: int
    organisation_id: int
    channels: tuple[str, ...]
    target_s: int
    agents: tuple[int, ...]


def ensure_bodies(rng: random.Random) -> list[QueueInfo]:
    """The three bodies, their teams, queues and agents (created once)."""
    user_model = get_user_model()
    out = []
    for name, slug, queues in BODIES:
        org, _ = Organisation.objects.get_or_create(slug=slug, defaults={"name": name})
        for code, qname, channels, target in queues:
            team, _ = Team.objects.get_or_create(organisation=org, name=f"Équipe {qname}"[:100])
            queue, _ = Queue.objects.get_or_create(
                organisation=org,
                code=code,
                defaults={"name": qname, "sla_target_seconds": target, "team": team},
            )
            agents = list(
                AgentProfile.objects.filter(team=team).order_by("pk").values_list("pk", flat=True)
            )
            for i in range(len(agents), AGENTS_PER_QUEUE):
                user = user_model.objects.create(
                    username=f"hist-{code}-{i + 1:02d}",
                    first_name=rng.choice(["Camille", "Nadia", "Louis", "Inès", "Hugo", "Léa"]),
                    last_name=rng.choice(["Martin", "Bernard", "Moreau", "Diallo", "Nguyen"]),
                    password="!",  # noqa: S106 - unusable: these agents never log in
                )
                # They speak the contacts' language: without it no contact of theirs could be
                # routed to them (a what-if replay of the history answered none).
                profile = AgentProfile.objects.create(  # and its presence row, offline
                    user=user, team=team, organisation=org, languages=["fr"]
                )
                agents.append(profile.pk)
            out.append(QueueInfo(queue.pk, org.pk, channels, target, tuple(agents)))
    return out


# --------------------------------------------------------------------------- arrivals


def day_counts(first: date, last: date, total: int) -> list[tuple[date, int]]:
    """How many contacts arrive each local day (weights by month and weekday, summing to total)."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    weights = [MONTH_WEIGHT[d.month] * WEEKDAY_WEIGHT[d.weekday()] for d in days]
    scale = total / sum(weights)
    counts = [math.floor(w * scale) for w in weights]
    for i in range(total - sum(counts)):
        counts[i % len(counts)] += 1
    return list(zip(days, counts, strict=True))


def arrival_times(day: date, n: int, rng: random.Random, now: datetime) -> list[datetime]:
    start, end = day_bounds(day, PARIS)
    hours = list(range(24))
    picked = rng.choices(hours, HOUR_WEIGHT, k=n)
    out = []
    for h in picked:
        moment = start + timedelta(hours=h, seconds=rng.uniform(0, 3600))
        if moment >= end:
            moment = end - timedelta(seconds=rng.uniform(1, 3600))
        out.append(min(moment, now - timedelta(seconds=rng.uniform(1, 60))))
    out.sort()
    return out


# --------------------------------------------------------------------------- one contact


@dataclass
class Life:
    """One generated interaction and what happened to it."""

    pk: int
    org: int
    queue: QueueInfo
    channel: str
    queued_at: datetime
    status: str
    agent: int | None = None
    offered_at: datetime | None = None
    answered_at: datetime | None = None
    wrap_up_at: datetime | None = None
    closed_at: datetime | None = None
    abandoned_at: datetime | None = None
    csat: int | None = None
    messages: int = 0


def live(
    pk: int,
    queue: QueueInfo,
    queued_at: datetime,
    now: datetime,
    rng: random.Random,
    message_factor: float,
) -> Life:
    channel = rng.choices(queue.channels, [CHANNEL_PROFILE[c][0] for c in queue.channels])[0]
    _share, wait_mean, handle_mean, abandon, unanswered, msg_mean = CHANNEL_PROFILE[channel]
    life = Life(
        pk=pk,
        org=queue.organisation_id,
        queue=queue,
        channel=channel,
        queued_at=queued_at,
        status="queued",
    )
    life.messages = max(0, round(rng.expovariate(1 / (msg_mean * message_factor))))
    r = rng.random()
    if r < abandon:
        short = rng.random() < 0.25
        patience = rng.uniform(1, 5) if short else rng.expovariate(1 / (wait_mean * 1.5))
        if queued_at + timedelta(seconds=patience) < now:
            life.abandoned_at = queued_at + timedelta(seconds=patience)
            life.status = "abandoned"
            life.messages = min(life.messages, 1)
        return life
    if r < abandon + unanswered:
        closed = queued_at + timedelta(seconds=rng.expovariate(1 / max(60.0, wait_mean)))
        if closed < now:
            life.closed_at = closed
            life.status = "closed"
            life.messages = min(life.messages, 1)
        return life
    offered = queued_at + timedelta(seconds=rng.expovariate(1 / wait_mean))
    if offered >= now:
        return life  # still waiting
    life.agent = rng.choice(queue.agents)
    life.offered_at = offered
    life.status = "offered"
    answered = offered + timedelta(seconds=rng.uniform(2, 15))
    if answered >= now:
        return life
    life.answered_at = answered
    life.status = "assigned"
    handle = rng.lognormvariate(math.log(handle_mean), 0.5)
    wrap = answered + timedelta(seconds=handle * 0.85)
    if wrap >= now:
        return life
    life.wrap_up_at = wrap
    life.status = "wrap_up"
    closed = answered + timedelta(seconds=handle)
    if closed >= now:
        return life
    life.closed_at = closed
    life.status = "closed"
    if rng.random() < 0.06:
        life.csat = rng.choices([1, 2, 3, 4, 5], [0.06, 0.07, 0.12, 0.35, 0.40])[0]
    return life


def transitions(life: Life) -> Iterator[tuple[Any, ...]]:
    """(interaction, from, to, reason, at) of one life, in order."""
    yield (life.pk, "new", "queued", "", life.queued_at)
    if life.abandoned_at is not None:
        yield (life.pk, "queued", "abandoned", "", life.abandoned_at)
        return
    if life.offered_at is None:
        if life.closed_at is not None:
            yield (life.pk, "queued", "closed", "", life.closed_at)
        return
    yield (life.pk, "queued", "offered", "", life.offered_at)
    if life.answered_at is not None:
        yield (life.pk, "offered", "assigned", "", life.answered_at)
    if life.wrap_up_at is not None:
        yield (life.pk, "assigned", "wrap_up", "", life.wrap_up_at)
    if life.closed_at is not None:
        yield (life.pk, "wrap_up", "closed", "", life.closed_at)


def messages(life: Life, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """(interaction, channel, direction, text, created_at) of one life."""
    start = life.queued_at - timedelta(seconds=1)
    end = life.closed_at or life.abandoned_at or life.answered_at or life.queued_at
    span = max(1.0, (end - start).total_seconds())
    for i in range(life.messages):
        if life.channel == Channel.VOICE:
            direction = "note"
        elif i == 0 or life.answered_at is None:
            direction = "inbound"
        else:
            direction = "outbound" if i % 2 else "inbound"
        at = start + timedelta(seconds=span * i / max(1, life.messages))
        yield (life.pk, life.channel, direction, rng.choice(PHRASES[direction]), at)


# --------------------------------------------------------------------------- the command


class Command(BaseCommand):
    help = "Generate a year of interactions, messages and status changes (benchmarks, demos)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interactions", type=int, help="default 1,000,000 (times --scale)")
        parser.add_argument("--messages", type=int, help="default 5 per interaction")
        parser.add_argument("--scale", type=float, default=1.0, help="share of the full year")
        parser.add_argument("--months", type=int, default=12)
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument(
            "--no-rollup", action="store_true", help="skip rolling up the past days for reports"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["scale"] <= 0 or options["months"] < 1:
            raise CommandError("--scale must be positive and --months at least 1")
        n = options["interactions"] or round(FULL_INTERACTIONS * options["scale"])
        if n < 1:
            raise CommandError("--interactions must be at least 1")
        n_messages = (
            options["messages"] if options["messages"] is not None else n * MESSAGES_PER_INTERACTION
        )
        rng = random.Random(options["seed"])  # noqa: S311 - made-up data, reproducible
        now = timezone.now()
        last = local_day(now, PARIS)
        first = last - timedelta(days=round(365.25 * options["months"] / 12) - 1)
        t0 = time.perf_counter()
        with transaction.atomic():
            queues = ensure_bodies(rng)
        mean_messages = sum(p[0] * p[5] for p in CHANNEL_PROFILE.values())
        factor = (n_messages / n) / mean_messages * 1.25  # abandons and waits keep fewer
        counts = day_counts(first, last, n)
        self.stdout.write(
            f"{n} interactions, about {n_messages} messages, {first} .. {last} "
            f"({len(counts)} days, {len(queues)} queues)"
        )
        # The past days' report roll-up is summed from the generated facts as they are written
        # (the same figures_of a rebuild uses), unless those days already had interactions.
        earlier = Interaction.objects.filter(queued_at__gte=day_bounds(first, PARIS)[0]).exists()
        self.rolled_up: dict[tuple[Any, ...], Figures] | None = (
            None if options["no_rollup"] or earlier else {}
        )
        self.last = last
        totals = self._write(counts, queues, now, rng, factor)
        elapsed = time.perf_counter() - t0
        self.stdout.write(
            f"wrote {totals['interactions']} interactions, {totals['messages']} messages, "
            f"{totals['transitions']} status changes, {totals['csat']} surveys in {elapsed:.1f} s"
        )
        from supervision.stats import rebuild_day

        rebuild_day(last)
        if self.rolled_up is not None:
            days = self._write_rollup(last, now)
            self.stdout.write(f"rolled up {days} past days (from the generated facts)")
        elif not options["no_rollup"]:
            t1 = time.perf_counter()
            built = ensure_built(day for day, _n in counts if day < last)
            self.stdout.write(
                f"rolled up {len(built)} past days in {time.perf_counter() - t1:.1f} s"
            )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self.stdout.write(f"done in {time.perf_counter() - t0:.1f} s")

    def _write(
        self,
        counts: list[tuple[date, int]],
        queues: list[QueueInfo],
        now: datetime,
        rng: random.Random,
        factor: float,
    ) -> dict[str, int]:
        queue_weights = [float(len(q.channels)) for q in queues]  # more channels, more contacts
        totals = dict.fromkeys(("interactions", "messages", "transitions", "csat"), 0)
        pending: list[tuple[date, int]] = []
        size = 0
        for day, k in counts:
            pending.append((day, k))
            size += k
            if size >= BATCH:
                self._batch(pending, queues, queue_weights, now, rng, factor, totals)
                pending, size = [], 0
                self.stdout.write(f"  up to {day}: {totals['interactions']} interactions")
        if pending:
            self._batch(pending, queues, queue_weights, now, rng, factor, totals)
        return totals

    def _batch(
        self,
        days: list[tuple[date, int]],
        queues: list[QueueInfo],
        queue_weights: list[float],
        now: datetime,
        rng: random.Random,
        factor: float,
        totals: dict[str, int],
    ) -> None:
        n = sum(k for _, k in days)
        with transaction.atomic():
            ids = _reserve_ids(Interaction, n)
            lives: list[Life] = []
            for day, k in days:
                for at in arrival_times(day, k, rng, now):
                    queue = rng.choices(queues, queue_weights)[0]
                    lives.append(live(ids[len(lives)], queue, at, now, rng, factor))
            CopyTable(
                Interaction,
                (
                    "id",
                    "organisation_id",
                    "channel",
                    "direction",
                    "queue_id",
                    "status",
                    "language",
                    "sla_due_at",
                    "assigned_agent_id",
                    "created_at",
                    "queued_at",
                    "queue_entered_at",
                    "offered_at",
                    "assigned_at",
                    "wrap_up_at",
                    "closed_at",
                    "abandoned_at",
                ),
            ).write(
                (
                    lf.pk,
                    lf.org,
                    lf.channel,
                    "inbound",
                    lf.queue.pk,
                    lf.status,
                    "fr",
                    lf.queued_at + timedelta(seconds=lf.queue.target_s),
                    lf.agent,
                    lf.queued_at,
                    lf.queued_at,
                    lf.queued_at,
                    lf.offered_at,
                    lf.answered_at,
                    lf.wrap_up_at,
                    lf.closed_at,
                    lf.abandoned_at,
                )
                for lf in lives
            )
            totals["transitions"] += CopyTable(
                InteractionTransition,
                ("interaction_id", "from_status", "to_status", "reason", "at"),
            ).write(t for lf in lives for t in transitions(lf))
            totals["messages"] += CopyTable(
                Message, ("interaction_id", "channel", "direction", "text", "created_at")
            ).write(m for lf in lives for m in messages(lf, rng))
            totals["csat"] += CopyTable(
                SatisfactionResponse, ("interaction_id", "score", "at")
            ).write(
                (lf.pk, lf.csat, lf.closed_at + timedelta(minutes=5))
                for lf in lives
                if lf.csat is not None and lf.closed_at is not None
            )
        totals["interactions"] += n
        if self.rolled_up is not None:
            self._sum_up(lives)

    def _sum_up(self, lives: list[Life]) -> None:
        """Add the lives of past days to the roll-up (per organisation, queue, channel, agent
        and answered, as ``supervision.rollup.build_day`` keys them; those still waiting are
        left out, as it leaves them out: reports read them live)."""
        assert self.rolled_up is not None
        for lf in lives:
            day = local_day(lf.queued_at, PARIS)
            if day >= self.last or lf.status in WAITING:
                continue
            answered = lf.answered_at is not None
            facts = InteractionFacts(
                interaction_id=lf.pk,
                channel=lf.channel,
                queue_id=lf.queue.pk,
                queued_at=lf.queued_at,
                sla_target_s=float(lf.queue.target_s),
                answered_at=lf.answered_at,
                closed_at=lf.closed_at,
                abandoned_at=None if answered else lf.abandoned_at,
                csat=lf.csat,
            )
            key = (day, lf.org, lf.queue.pk, lf.channel, lf.agent or 0, answered)
            self.rolled_up[key] = self.rolled_up.get(key, ZERO) + figures_of(facts)

    def _write_rollup(self, last: date, now: datetime) -> int:
        assert self.rolled_up is not None
        days = sorted({key[0] for key in self.rolled_up})
        with transaction.atomic():
            write_day_stats(self.rolled_up, days, now)
        return len(days)
