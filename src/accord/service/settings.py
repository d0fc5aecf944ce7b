"""Small node-wide settings kept as JSON in ``node_settings``: the business calendar."""

from __future__ import annotations

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
