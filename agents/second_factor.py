"""Who needs a second factor, whether a session has passed it, and what the console socket
needs to admit an agent. Teleworkers (``AgentProfile.remote``), supervisors, administrators and
data-protection officers must use one; whether a session passed it is the kernel's
(:mod:`kernel.second_factor`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils.functional import LazyObject, empty
from django_otp import device_classes
from django_otp.plugins.otp_totp.models import TOTPDevice

from kernel.roles import ADMINISTRATOR, DATA_PROTECTION_OFFICER, SUPERVISOR
from kernel.second_factor import session_device_confirmed

from .models import AgentProfile

_PRIVILEGED = (SUPERVISOR, ADMINISTRATOR, DATA_PROTECTION_OFFICER)


@dataclass(frozen=True, slots=True)
class AccessFacts:
    """What the second factor and the console need to know of a signed-in user, read in one
    statement (:func:`access_facts`): their agent profile (``None``: not an agent), whether
    they are in a privileged group (supervisor, administrator, data-protection officer) and
    whether they have a confirmed device."""

    agent: AgentProfile | None
    privileged: bool
    has_device: bool

    def second_factor_required(self, user: Any) -> bool:
        return bool(
            user.is_staff
            or user.is_superuser
            or self.privileged
            or (self.agent is not None and self.agent.remote)
        )

    def second_factor_expected(self, user: Any) -> bool:
        return self.second_factor_required(user) or self.has_device


NOBODY = AccessFacts(agent=None, privileged=False, has_device=False)

# The statement of access_facts, written once per database vendor from the models' tables.
_FACTS_SQL: dict[str, tuple[str, int]] = {}


def _facts_sql() -> tuple[str, int]:
    """``(sql, number of device tables)``: the privileged groups, any confirmed device and the
    agent profile's columns (NULL when the user has none) of the user ``%s``."""
    cached = _FACTS_SQL.get(connection.vendor)
    if cached is not None:
        return cached
    qn = connection.ops.quote_name
    through = get_user_model().groups.through._meta
    member_user = through.get_field("user").column
    member_group = through.get_field("group").column
    # Names from the models' metadata, values as parameters.
    groups = (
        f"EXISTS(SELECT 1 FROM {qn(through.db_table)} m INNER JOIN {qn(Group._meta.db_table)} g"  # noqa: S608
        f" ON g.{qn(Group._meta.pk.column)} = m.{qn(member_group)}"
        f" WHERE m.{qn(member_user)} = %s AND g.{qn(Group._meta.get_field('name').column)}"
        f" IN ({', '.join(['%s'] * len(_PRIVILEGED))}))"
    )
    devices = [
        f"EXISTS(SELECT 1 FROM {qn(model._meta.db_table)} d"  # noqa: S608
        f" WHERE d.{qn(model._meta.get_field('user').column)} = %s"
        f" AND d.{qn(model._meta.get_field('confirmed').column)} = %s)"
        for model in device_classes()
    ]
    has_device = " OR ".join(devices) if devices else "1 = 0"
    profile = AgentProfile._meta
    columns = ", ".join(f"p.{qn(f.column)}" for f in profile.concrete_fields)
    sql = (
        f"SELECT {groups}, ({has_device}), {columns}"  # noqa: S608
        f" FROM (SELECT 1 AS one) AS one LEFT JOIN {qn(profile.db_table)} p"
        f" ON p.{qn(profile.get_field('user').column)} = %s"
    )
    _FACTS_SQL[connection.vendor] = (sql, len(devices))
    return sql, len(devices)


def _real_user(user: Any) -> Any:
    """The user model instance behind a request's lazy ``request.user`` (auth's, then OTP's)."""
    while isinstance(user, LazyObject):
        lazy: Any = user
        if lazy._wrapped is empty:
            lazy._setup()
        user = lazy._wrapped
    return user


def access_facts(user: Any) -> AccessFacts:
    """:class:`AccessFacts` of ``user``, in one statement (none for an anonymous user).

    The profile is cached both ways: ``profile.user`` is ``user`` and ``user.agent_profile``
    the profile (or known absent), so neither reads again."""
    if not getattr(user, "is_authenticated", False):
        return NOBODY
    user = _real_user(user)
    sql, device_tables = _facts_sql()
    params: list[Any] = [user.pk, *_PRIVILEGED, *([user.pk, True] * device_tables), user.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    agent = _profile_from_row(row[2:]) if row[2] is not None else None
    reverse = get_user_model().agent_profile.related
    if not reverse.is_cached(user):  # a profile already in hand stays the one in hand
        reverse.set_cached_value(user, agent)
    if agent is not None:
        AgentProfile.user.field.set_cached_value(agent, user)
    return AccessFacts(agent=agent, privileged=bool(row[0]), has_device=bool(row[1]))


def _profile_from_row(values: tuple[Any, ...]) -> AgentProfile:
    """An :class:`AgentProfile` from its columns as the database gave them (converted as the
    ORM converts them: JSON, booleans on SQLite...)."""
    converted = list(values)
    for index, column, converters in _converters():
        value = converted[index]
        for converter in converters:
            value = converter(value, column, connection)
        converted[index] = value
    names = [f.attname for f in AgentProfile._meta.concrete_fields]
    return AgentProfile.from_db(connection.alias, names, converted)


_CONVERTERS: dict[str, list[tuple[int, Any, list[Any]]]] = {}


def _converters() -> list[tuple[int, Any, list[Any]]]:
    cached = _CONVERTERS.get(connection.vendor)
    if cached is None:
        cached = []
        field: Any
        for index, field in enumerate(AgentProfile._meta.concrete_fields):
            column = field.get_col(AgentProfile._meta.db_table)
            converters = connection.ops.get_db_converters(column) + field.get_db_converters(
                connection
            )
            if converters:
                cached.append((index, column, converters))
        _CONVERTERS[connection.vendor] = cached
    return cached


def second_factor_required(user: Any) -> bool:
    """Teleworkers, supervisors, administrators and data-protection officers must use a second
    factor."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff or user.is_superuser:
        return True
    return access_facts(user).second_factor_required(user)


def second_factor_expected(user: Any) -> bool:
    """The user must pass the second factor: it is required, or they enrolled a device."""
    if not getattr(user, "is_authenticated", False):
        return False
    return access_facts(user).second_factor_expected(user)


def session_passed_second_factor(user: Any, session: Any) -> bool:
    """A session that logged in with a code carries the device's id (when one is expected)."""
    if not second_factor_expected(user):
        return True
    return session_device_confirmed(user, session)


def agent_admission(user_id: int) -> dict[str, Any] | None:
    """What the console socket needs to admit a user, in one query: the agent profile's id,
    whether the user is a teleworker, a supervisor/administrator, or has a confirmed device."""
    return (
        AgentProfile.objects.filter(user_id=user_id)
        .annotate(
            privileged=Exists(
                Group.objects.filter(user=OuterRef("user_id"), name__in=[SUPERVISOR, ADMINISTRATOR])
            ),
            has_device=Exists(
                TOTPDevice.objects.filter(user_id=OuterRef("user_id"), confirmed=True)
            ),
        )
        .values("pk", "organisation_id", "remote", "privileged", "has_device")
        .first()
    )
