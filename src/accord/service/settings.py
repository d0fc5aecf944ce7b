"""Small node-wide settings kept as JSON in ``node_settings``: the business calendar, how
long a resolved case reopens, the email channel's sender policy."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.service.calendar import BusinessCalendar, WeeklyHours
from accord.service.errors import Invalid
from accord.store.database import Database
from accord.store.tables import node_settings

CALENDAR = "calendar"
REOPEN_WITHIN_DAYS = "reopen_within_days"
DEFAULT_REOPEN_WITHIN_DAYS = 30


def read(db: Database, name: str) -> Any:
    with db.read() as conn:
        return read_in(conn, name)


def read_in(conn: Connection, name: str) -> Any:
    """``read`` in a transaction the caller holds (a follower's: no second connection)."""
    raw = conn.execute(
        sa.select(node_settings.c.value).where(node_settings.c.name == name)
    ).scalar_one_or_none()
    return None if raw is None else orjson.loads(raw)


def write(db: Database, name: str, value: Any) -> None:
    with db.write() as conn:
        conn.execute(node_settings.delete().where(node_settings.c.name == name))
        conn.execute(node_settings.insert().values(name=name, value=orjson.dumps(value).decode()))


def calendar(db: Database) -> BusinessCalendar:
    """The node's business calendar; open around the clock until one is set."""
    with db.read() as conn:
        return calendar_in(conn)


def calendar_in(conn: Connection) -> BusinessCalendar:
    """``calendar`` in a transaction the caller holds."""
    config = read_in(conn, CALENDAR)
    if not config:
        return BusinessCalendar.always()
    return build_calendar(config)


def zone(db: Database) -> ZoneInfo:
    """The business calendar's time zone, for showing times to people; UTC while the
    stored calendar is unusable (the pages still work, and say times in UTC)."""
    try:
        return ZoneInfo(calendar(db).timezone)
    except Invalid:
        return ZoneInfo("UTC")


def build_calendar(config: dict[str, Any]) -> BusinessCalendar:
    try:
        return BusinessCalendar(
            config["timezone"],
            WeeklyHours.parse(config["hours"]),
            country=config.get("country"),
            subdivision=config.get("subdivision"),
        )
    except (KeyError, ValueError) as exc:
        raise Invalid(f"business calendar: {exc}", field="calendar") from exc


def reopen_within_days(db: Database) -> int:
    """How many days after a case is resolved a customer's message on a channel reopens
    it; after that, the message opens a new case that names the old one."""
    value = read(db, REOPEN_WITHIN_DAYS)
    return DEFAULT_REOPEN_WITHIN_DAYS if value is None else int(value)


def set_reopen_within_days(db: Database, days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3650:
        raise Invalid("reopen_within_days is a whole number of days, 0 to 3650", field="days")
    write(db, REOPEN_WITHIN_DAYS, days)


def set_calendar(
    db: Database,
    *,
    timezone: str,
    hours: str,
    country: str | None = None,
    subdivision: str | None = None,
) -> BusinessCalendar:
    config = {"timezone": timezone, "hours": hours, "country": country, "subdivision": subdivision}
    built = build_calendar(config)  # refuse what does not parse before storing it
    write(db, CALENDAR, config)
    return built


# -- the email channel's sender policy (docs/email.md, "What a sender cannot do") ------------

MAIL_POLICY = "mail_policy"


@dataclass(frozen=True)
class MailPolicy:
    """Per-sender limits and sender authentication for inbound mail.

    ``new_cases_per_hour``: mail from one sender beyond this many new cases in an hour is
    stored and held for a member, never dropped. ``acknowledgements_per_hour``: at most
    this many automatic acknowledgements go to one address in an hour. ``authserv_ids``:
    the authserv-ids (RFC 8601) of the mail servers whose ``Authentication-Results``
    Accord trusts; empty, the From address is taken as it comes (and the docs say why
    not to run that way)."""

    new_cases_per_hour: int = 10
    acknowledgements_per_hour: int = 3
    authserv_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "new_cases_per_hour": self.new_cases_per_hour,
            "acknowledgements_per_hour": self.acknowledgements_per_hour,
            "authserv_ids": list(self.authserv_ids),
        }


def _policy(raw: Any) -> MailPolicy:
    if not isinstance(raw, dict):
        return MailPolicy()
    default = MailPolicy()
    return MailPolicy(
        new_cases_per_hour=int(raw.get("new_cases_per_hour", default.new_cases_per_hour)),
        acknowledgements_per_hour=int(
            raw.get("acknowledgements_per_hour", default.acknowledgements_per_hour)
        ),
        authserv_ids=tuple(str(a) for a in raw.get("authserv_ids", ())),
    )


def mail_policy(db: Database) -> MailPolicy:
    """The node's sender policy for inbound mail (defaults until one is set)."""
    return _policy(read(db, MAIL_POLICY))


def mail_policy_in(conn: Connection) -> MailPolicy:
    """``mail_policy`` read in an open transaction (the inbound pipeline's own)."""
    raw = conn.execute(
        sa.select(node_settings.c.value).where(node_settings.c.name == MAIL_POLICY)
    ).scalar_one_or_none()
    return MailPolicy() if raw is None else _policy(orjson.loads(raw))


_AUTHSERV_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")


def set_mail_policy(
    db: Database,
    *,
    new_cases_per_hour: int | None = None,
    acknowledgements_per_hour: int | None = None,
    authserv_ids: Sequence[str] | None = None,
) -> MailPolicy:
    """Change what is given; the rest stays as it is."""
    current = mail_policy(db)
    for name, value in (
        ("new_cases_per_hour", new_cases_per_hour),
        ("acknowledgements_per_hour", acknowledgements_per_hour),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000
        ):
            raise Invalid(f"{name} is a whole number, 0 to 100000", field=name)
    ids = current.authserv_ids
    if authserv_ids is not None:
        ids = tuple(dict.fromkeys(a.strip().lower() for a in authserv_ids if a.strip()))
        bad = [a for a in ids if not _AUTHSERV_ID.fullmatch(a)]
        if bad:
            raise Invalid(
                f"not an authserv-id (a host name such as mx.example.com): {bad[0]!r}",
                field="authserv_ids",
            )
    policy = MailPolicy(
        new_cases_per_hour=(
            current.new_cases_per_hour if new_cases_per_hour is None else new_cases_per_hour
        ),
        acknowledgements_per_hour=(
            current.acknowledgements_per_hour
            if acknowledgements_per_hour is None
            else acknowledgements_per_hour
        ),
        authserv_ids=ids,
    )
    write(db, MAIL_POLICY, policy.to_json())
    return policy
