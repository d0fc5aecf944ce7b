"""How a member reads times on the pages: their zone (by default the business calendar's)
and their clock (24-hour or 12-hour)."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa

from accord.service import settings
from accord.service.errors import Invalid
from accord.store.database import Database
from accord.store.tables import member_prefs

CLOCKS = {"24h": "24-hour (14:30)", "12h": "12-hour (2:30 PM)"}


@dataclass(frozen=True)
class Prefs:
    zone: ZoneInfo
    clock: str  # a key of CLOCKS
    own_zone: bool  # the member chose the zone (else the business calendar's)

    def fmt(self, pattern: str) -> str:
        """A strftime pattern in this member's clock."""
        return pattern.replace("%H:%M", "%I:%M %p") if self.clock == "12h" else pattern


class MemberPrefs:
    def __init__(self, db: Database) -> None:
        self.db = db

    def of(self, member_id: int) -> Prefs:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(member_prefs.c.zone, member_prefs.c.clock).where(
                    member_prefs.c.member_id == member_id
                )
            ).first()
        if row is None:
            return Prefs(settings.zone(self.db), "24h", False)
        zone = ZoneInfo(row[0]) if row[0] else settings.zone(self.db)
        return Prefs(zone, row[1], bool(row[0]))

    def set(self, member_id: int, *, zone: str, clock: str) -> Prefs:
        """Choose the zone (empty: the business calendar's) and the clock."""
        zone = zone.strip()
        if zone and zone not in available_timezones():
            raise Invalid(f"unknown time zone {zone!r} (e.g. Europe/Berlin)", field="zone")
        if clock not in CLOCKS:
            raise Invalid(f"the clock is one of {', '.join(CLOCKS)}", field="clock")
        with self.db.write() as conn:
            done = conn.execute(
                member_prefs.update()
                .where(member_prefs.c.member_id == member_id)
                .values(zone=zone or None, clock=clock)
            )
            if not done.rowcount:
                conn.execute(
                    member_prefs.insert(),
                    {"member_id": member_id, "zone": zone or None, "clock": clock},
                )
        return self.of(member_id)
