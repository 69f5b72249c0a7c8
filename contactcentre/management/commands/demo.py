"""Demo data: a CAF, a mairie and a préfecture sharing one contact centre.

    python manage.py demo              # create (refuses to run twice)
    python manage.py demo --if-empty   # create only on an empty database (used by dev.py run)
    python manage.py demo --reset-passwords

Passwords are random and printed once; ``--reset-passwords`` prints new ones.
"""

from __future__ import annotations

import random
import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from agents.models import AgentProfile, AgentSkill
from configuration.models import EscalationStep, Queue, QueueSkill, Skill, Team
from contacts.actions import do_add_identity, resolve_contact
from contacts.models import Case, Contact
from interactions.actions import do_create_interaction, do_record_message, do_transition_interaction
from interactions.channels import Channel
from interactions.lifecycle import Status
from kernel.roles import ADMINISTRATOR, AGENT, SUPERVISOR, ensure_roles
from organisations.models import Membership, Organisation

SKILLS = [
    ("caf-allocations", "Allocations familiales (CAF)"),
    ("caf-logement", "Aides au logement – APL (CAF)"),
    ("caf-rsa", "RSA et prime d'activité (CAF)"),
    ("mairie-etat-civil", "État civil (mairie)"),
    ("mairie-ecoles", "Inscriptions scolaires (mairie)"),
    ("mairie-urbanisme", "Urbanisme (mairie)"),
    ("pref-sejour", "Titres de séjour (préfecture)"),
    ("pref-naturalisation", "Naturalisation (préfecture)"),
    ("pref-ants", "Permis et cartes grises – ANTS (préfecture)"),
    ("accueil-general", "Accueil et orientation"),
]

# The three public bodies: each a separate data controller (an organisation) with one team.
ORGANISATIONS = [
    # name, slug, SIRET, data-protection officer e-mail, skill code prefix
    ("CAF du Rhône", "caf-du-rhone", "53481986500015", "dpo@caf-rhone.example.fr", "caf-"),
    (
        "Mairie de Villeurbanne",
        "mairie-de-villeurbanne",
        "21690266800019",
        "dpo@mairie-villeurbanne.example.fr",
        "mairie-",
    ),
    (
        "Préfecture du Rhône",
        "prefecture-du-rhone",
        "17690001900013",
        "dpo@rhone.gouv.example.fr",
        "pref-",
    ),
]
TEAMS = [name for name, *_rest in ORGANISATIONS]
SHARED_SKILLS = ("accueil-general",)  # every body has its own copy

# code, name, team index, priority, SLA seconds, skills {code: level}, steps
QUEUES: list[tuple[str, str, int, int, int, dict[str, int], list[dict[str, Any]]]] = [
    (
        "caf-prestations",
        "CAF – prestations familiales",
        0,
        0,
        60,
        {"caf-allocations": 3},
        [
            {"after_seconds": 30, "min_level_cap": 2},
            {"after_seconds": 90, "any_agent_of_team": True},
        ],
    ),
    (
        "caf-logement",
        "CAF – aides au logement",
        0,
        0,
        60,
        {"caf-logement": 3},
        [{"after_seconds": 45, "min_level_cap": 1}],
    ),
    ("caf-rsa", "CAF – RSA / prime d'activité", 0, 1, 60, {"caf-rsa": 2}, []),
    (
        "mairie-etat-civil",
        "Mairie – état civil",
        1,
        0,
        120,
        {"mairie-etat-civil": 2},
        [{"after_seconds": 120, "any_agent_of_team": True}],
    ),
    ("mairie-ecoles", "Mairie – écoles", 1, 0, 300, {"mairie-ecoles": 1}, []),
    (
        "prefecture-sejour",
        "Préfecture – titres de séjour",
        2,
        2,
        90,
        {"pref-sejour": 3},
        [{"after_seconds": 60, "min_level_cap": 2}],
    ),
    ("prefecture-ants", "Préfecture – permis et cartes grises", 2, 0, 120, {"pref-ants": 2}, []),
]

# (address, name, queue): the demo's inbound mailboxes.
DEMO_MAILBOXES = [
    ("contact@caf.example.fr", "CAF – accueil", "caf-prestations"),
    ("etat-civil@mairie.example.fr", "Mairie – état civil", "mairie-etat-civil"),
    ("titres@prefecture.example.fr", "Préfecture – titres de séjour", "prefecture-sejour"),
]

AGENTS = [
    # username, first, last, team index, skills, languages, remote
    (
        "camille.martin",
        "Camille",
        "Martin",
        0,
        {"caf-allocations": 5, "caf-logement": 4, "accueil-general": 3},
        ["fr", "en"],
        False,
    ),
    ("lucas.bernard", "Lucas", "Bernard", 0, {"caf-allocations": 3, "caf-rsa": 4}, ["fr"], True),
    ("lea.thomas", "Léa", "Thomas", 0, {"caf-logement": 5, "caf-rsa": 2}, ["fr"], False),
    ("hugo.petit", "Hugo", "Petit", 0, {"caf-allocations": 2, "accueil-general": 4}, ["fr"], True),
    (
        "chloe.robert",
        "Chloé",
        "Robert",
        1,
        {"mairie-etat-civil": 5, "mairie-ecoles": 3},
        ["fr"],
        False,
    ),
    (
        "nathan.richard",
        "Nathan",
        "Richard",
        1,
        {"mairie-etat-civil": 2, "mairie-urbanisme": 4},
        ["fr", "en"],
        False,
    ),
    (
        "manon.durand",
        "Manon",
        "Durand",
        1,
        {"mairie-ecoles": 5, "accueil-general": 2},
        ["fr"],
        True,
    ),
    (
        "yanis.dubois",
        "Yanis",
        "Dubois",
        2,
        {"pref-sejour": 5, "pref-naturalisation": 4},
        ["fr", "ar"],
        False,
    ),
    ("ines.moreau", "Inès", "Moreau", 2, {"pref-sejour": 3, "pref-ants": 4}, ["fr", "en"], True),
    ("theo.laurent", "Théo", "Laurent", 2, {"pref-ants": 5, "accueil-general": 3}, ["fr"], False),
    (
        "sarah.simon",
        "Sarah",
        "Simon",
        2,
        {"pref-sejour": 2, "pref-naturalisation": 2},
        ["fr", "es"],
        False,
    ),
    (
        "louis.michel",
        "Louis",
        "Michel",
        0,
        {"caf-allocations": 4, "caf-logement": 2, "caf-rsa": 3},
        ["fr"],
        False,
    ),
]

SUPERVISORS = [
    ("nadia.lefebvre", "Nadia", "Lefebvre", [0]),
    ("julien.roche", "Julien", "Roche", [1]),
    ("pierre.garcia", "Pierre", "Garcia", [2]),
]

# One administrator per organisation (they manage their body only; "admin" manages all).
ORGANISATION_ADMINS = [
    ("admin.caf", "Claire", "Vidal", 0),
    ("admin.mairie", "Marc", "Blanc", 1),
    ("admin.prefecture", "Sylvie", "Morel", 2),
]

CITIZENS = [
    ("Marie Dupont", "06 12 34 56 78", "marie.dupont@example.fr"),
    ("Jean Lefèvre", "07 98 76 54 32", None),
    ("Fatima Benali", "+33 6 45 67 89 01", "f.benali@example.org"),
    ("Kevin Nguyen", "0033 6 23 45 67 89", "kevin.nguyen@example.net"),
    ("Aurélie Payet", "+262 692 12 34 56", "aurelie.payet@example.re"),
    ("Mamadou Diallo", "06 87 65 43 21", None),
    ("Sophie Girard", None, "sophie.girard@example.fr"),
    ("Jérôme Roux", "04 72 00 11 22", None),
    ("Élodie Fontaine", "06 33 44 55 66", "elodie.fontaine@example.com"),
    ("Ahmed Haddad", "07 11 22 33 44", "ahmed.haddad@example.fr"),
    ("Lucie Marchand", "06 99 88 77 66", None),
    ("Gabriel Lopez", None, "gabriel.lopez@example.es"),
]

SUBJECTS = {
    "caf-prestations": ["Retard de versement des allocations", "Changement de situation familiale"],
    "caf-logement": ["Demande d'APL étudiant", "Déclaration de changement de loyer"],
    "caf-rsa": ["Déclaration trimestrielle RSA", "Prime d'activité : calcul"],
    "mairie-etat-civil": ["Copie d'acte de naissance", "Rendez-vous pour un mariage"],
    "mairie-ecoles": ["Inscription en maternelle", "Cantine : facture"],
    "prefecture-sejour": ["Renouvellement de titre de séjour", "Récépissé expiré"],
    "prefecture-ants": ["Carte grise bloquée", "Échange de permis étranger"],
}


def _password() -> str:
    return secrets.token_urlsafe(9)


class Command(BaseCommand):
    help = "Create demo data: queues, skills, teams, agents, citizens and interactions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if data exists.")
        parser.add_argument(
            "--reset-passwords", action="store_true", help="Give the demo users new passwords."
        )
        parser.add_argument("--seed", type=int, default=2026)

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        if options["reset_passwords"]:
            users = user_model.objects.filter(username__in=self._usernames()).order_by("username")
            if not users.exists():
                raise CommandError("No demo users: run `python manage.py demo` first.")
            self._print_logins(self._reset(list(users)))
            return
        if Skill.objects.filter(code="caf-allocations").exists():
            if options["if_empty"]:
                self.stdout.write(
                    "Demo data already present (passwords were printed when it was created; "
                    "`python manage.py demo --reset-passwords` prints new ones)."
                )
                return
            raise CommandError("Demo data already exists (use --reset-passwords for new logins).")
        ensure_roles()
        with transaction.atomic():
            logins = self._create(random.Random(options["seed"]))  # noqa: S311 - demo data
        self._print_logins(logins)

    @staticmethod
    def _usernames() -> list[str]:
        return (
            ["admin"]
            + [a[0] for a in ORGANISATION_ADMINS]
            + [s[0] for s in SUPERVISORS]
            + [a[0] for a in AGENTS]
        )

    def _reset(self, users: list[Any]) -> list[tuple[str, str, str]]:
        logins = []
        for user in users:
            password = _password()
            user.set_password(password)
            user.save(update_fields=["password"])
            role = next((g.name for g in user.groups.all()), "")
            role = role or ("platform admin" if user.is_superuser else "")
            logins.append((user.username, password, role))
        return logins

    def _create(self, rng: random.Random) -> list[tuple[str, str, str]]:
        user_model = get_user_model()
        groups = {name: Group.objects.get(name=name) for name in (AGENT, SUPERVISOR, ADMINISTRATOR)}
        orgs = [
            Organisation.objects.create(
                name=name,
                slug=slug,
                siret=siret,
                dpo_name="Délégué à la protection des données",
                dpo_email=dpo,
            )
            for name, slug, siret, dpo, _prefix in ORGANISATIONS
        ]
        skills: dict[tuple[int, str], Skill] = {}
        for index, (*_head, prefix) in enumerate(ORGANISATIONS):
            for code, name in SKILLS:
                if code.startswith(prefix) or code in SHARED_SKILLS:
                    skills[index, code] = Skill.objects.create(
                        organisation=orgs[index], code=code, name=name
                    )
        teams = [
            Team.objects.create(organisation=orgs[i], name=name) for i, name in enumerate(TEAMS)
        ]
        queues: dict[str, Queue] = {}
        for code, name, team, priority, sla, needs, steps in QUEUES:
            queue = Queue.objects.create(
                code=code, name=name, team=teams[team], priority=priority, sla_target_seconds=sla
            )
            for skill_code, level in needs.items():
                QueueSkill.objects.create(
                    queue=queue, skill=skills[team, skill_code], min_level=level
                )
            for step in steps:
                EscalationStep.objects.create(queue=queue, **step)
            queues[code] = queue
        queues["caf-logement"].overflow_queue = queues["caf-prestations"]
        queues["caf-logement"].save(update_fields=["overflow_queue"])
        # The mairie's web chat widget and its bot (/chat/demo/).
        from channels_inbound.chat.demo import create_demo_widget

        create_demo_widget(queues["mairie-etat-civil"])
        # One mailbox per body, so `dev.py run --smtp` accepts mail out of the box
        # (docs/channels.md, "E-mail").
        from channels_inbound.models import Endpoint

        for address, name, queue_code in DEMO_MAILBOXES:
            Endpoint.objects.create(
                channel=Channel.EMAIL, address=address, name=name, queue=queues[queue_code]
            )

        logins: list[tuple[str, str, str]] = []
        password = _password()
        user_model.objects.create_superuser(
            "admin", "admin@example.fr", password, first_name="Admin", last_name="Démo"
        )
        logins.append(("admin", password, "platform admin"))
        for username, first, last, org_index in ORGANISATION_ADMINS:
            password = _password()
            user = user_model.objects.create_user(
                username,
                f"{username}@example.fr",
                password,
                first_name=first,
                last_name=last,
                is_staff=True,
            )
            user.groups.add(groups[ADMINISTRATOR])
            Membership.objects.create(user=user, organisation=orgs[org_index])
            logins.append((username, password, ADMINISTRATOR))
        for username, first, last, team_indexes in SUPERVISORS:
            password = _password()
            user = user_model.objects.create_user(
                username,
                f"{username}@example.fr",
                password,
                first_name=first,
                last_name=last,
                is_staff=True,
            )
            user.groups.add(groups[SUPERVISOR])
            Membership.objects.create(user=user, organisation=teams[team_indexes[0]].organisation)
            for index in team_indexes:
                teams[index].supervisors.add(user)
            AgentProfile.objects.create(user=user, team=teams[team_indexes[0]], languages=["fr"])
            logins.append((username, password, SUPERVISOR))
        agents: list[AgentProfile] = []
        for username, first, last, team, levels, languages, remote in AGENTS:
            password = _password()
            user = user_model.objects.create_user(
                username, f"{username}@example.fr", password, first_name=first, last_name=last
            )
            user.groups.add(groups[AGENT])
            Membership.objects.create(user=user, organisation=orgs[team])
            profile = AgentProfile.objects.create(
                user=user,
                team=teams[team],
                languages=languages,
                remote=remote,
                telework_phone=f"+3361{rng.randint(1000000, 9999999)}" if remote else "",
            )
            for code, level in levels.items():
                AgentSkill.objects.create(agent=profile, skill=skills[team, code], level=level)
            agents.append(profile)
            logins.append((username, password, AGENT))

        # Citizens: each body has its own records; the same person writing to two bodies is
        # two records (nothing crosses organisations).
        def citizen(index: int, org: Organisation) -> Contact:
            name, phone, email = CITIZENS[index]
            kind, raw = ("phone", phone) if phone else ("email", email)
            resolved = resolve_contact(kind, raw, display_name=name, organisation_id=org.pk)
            contact = resolved.contact
            assert contact is not None
            if resolved.created and phone and email:
                do_add_identity(contact=contact, kind="email", raw=email)
            return contact

        now = timezone.now()
        year = now.year
        for index in range(6):
            org = orgs[index % len(orgs)]
            Case.objects.create(
                reference=f"DOS-{year}-{index + 1:06d}",
                contact=citizen(index, org),
                subject=rng.choice(SUBJECTS[rng.choice(list(SUBJECTS))]),
            )

        # The console's wrap-up codes and canned responses (admin-managed in real use).
        from console.models import CannedResponse, WrapUpCode

        for org in orgs:
            for code, label in (
                ("answered", "Réponse apportée"),
                ("appointment", "Rendez-vous proposé"),
                ("documents", "Pièces justificatives demandées"),
                ("redirected", "Réorienté vers un autre service"),
            ):
                WrapUpCode.objects.create(organisation=org, code=code, label=label)
            for title, text, language in (
                (
                    "Délai de traitement",
                    "Votre dossier est en cours de traitement. "
                    "Nous revenons vers vous dès que possible.",
                    "fr",
                ),
                (
                    "Pièces manquantes",
                    "Pour compléter votre dossier, merci de nous transmettre les pièces "
                    "suivantes : ",
                    "fr",
                ),
                (
                    "Processing time",
                    "Your application is being processed. "
                    "We will get back to you as soon as possible.",
                    "en",
                ),
            ):
                CannedResponse.objects.create(
                    organisation=org, title=title, language=language, text=text
                )

        # History: closed interactions over the last days, then a few waiting now.
        channels = [Channel.VOICE, Channel.VOICE, Channel.SMS, Channel.EMAIL, Channel.CHAT]
        for _ in range(40):
            queue = queues[rng.choice(list(queues))]
            at = now - timedelta(days=rng.randint(1, 20), minutes=rng.randint(0, 600))
            interaction = do_create_interaction(
                channel=rng.choice(channels),
                contact=citizen(rng.randrange(len(CITIZENS)), queue.organisation),
                queue=queue,
                subject=rng.choice(SUBJECTS[queue.code]),
                now=at,
            )
            do_record_message(
                interaction=interaction, direction="inbound", text=interaction.subject
            )
            own = [a for a in agents if a.organisation_id == queue.organisation_id]
            eligible = [a for a in own if set(a.skill_levels()) & set(queue.required_skills())]
            agent = rng.choice(eligible or own)
            answered = at + timedelta(seconds=rng.randint(5, 240))
            do_transition_interaction(
                interaction=interaction,
                to=Status.ASSIGNED,
                reason="demo",
                now=answered,
                extra={"assigned_agent": agent},
            )
            wrap = answered + timedelta(seconds=rng.randint(60, 600))
            do_transition_interaction(interaction=interaction, to=Status.WRAP_UP, now=wrap)
            do_transition_interaction(
                interaction=interaction, to=Status.CLOSED, now=wrap + timedelta(seconds=30)
            )
        # No call among them: a waiting call is a caller on hold through the provider, which
        # demo data cannot have (accepting one would find no live call to bridge).
        waiting_channels = [c for c in channels if c != Channel.VOICE]
        for _ in range(6):
            queue = queues[rng.choice(list(queues))]
            interaction = do_create_interaction(
                channel=rng.choice(waiting_channels),
                contact=citizen(rng.randrange(len(CITIZENS)), queue.organisation),
                queue=queue,
                subject=rng.choice(SUBJECTS[queue.code]),
                now=now - timedelta(seconds=rng.randint(5, 120)),
            )
            do_record_message(
                interaction=interaction, direction="inbound", text=interaction.subject
            )
        return logins

    def _print_logins(self, logins: list[tuple[str, str, str]]) -> None:
        self.stdout.write(self.style.SUCCESS("Demo logins (shown once — note them now):"))
        for username, password, role in logins:
            self.stdout.write(f"  {role:<14} {username:<16} {password}")
