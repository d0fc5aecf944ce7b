"""Web sessions: absolute and idle expiry on a clock the test moves, logout, purge."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from accord.auth.errors import MemberDisabledError, UnknownMemberError
from accord.auth.members import Member, MemberStore
from accord.auth.sessions import SessionStore, csrf_matches
from accord.store.database import Database
from accord.store.tables import web_sessions

from .helpers import PASSWORD, FakeClock


@pytest.fixture
def sessions(db: Database, clock: FakeClock) -> SessionStore:
    return SessionStore(db, now=clock, idle=timedelta(hours=2))


def test_create_and_lookup(db: Database, sessions: SessionStore, agent: Member) -> None:
    token, csrf = sessions.create(agent.id, timedelta(hours=8))
    grant = sessions.lookup(token)
    assert grant is not None and grant.member == agent and grant.csrf == csrf
    assert (
        csrf_matches(csrf, csrf)
        and not csrf_matches(csrf, csrf[:-1])
        and not csrf_matches(csrf, None)
    )
    assert sessions.lookup(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert sessions.lookup("not a token") is None
    with db.read() as conn:
        stored = conn.execute(sa.select(web_sessions.c.token_hash)).scalar_one()
    assert stored != token and token not in stored


def test_sessions_expire_at_their_ttl(
    sessions: SessionStore, agent: Member, clock: FakeClock
) -> None:
    token, _ = sessions.create(agent.id, timedelta(hours=3))
    for _hour in range(2):  # active use keeps the idle limit away, but not the ttl
        clock.advance(hours=1, minutes=29)
        assert sessions.lookup(token) is not None
    clock.advance(minutes=2)
    assert sessions.lookup(token) is None


def test_sessions_expire_when_idle(sessions: SessionStore, agent: Member, clock: FakeClock) -> None:
    token, _ = sessions.create(agent.id, timedelta(hours=12))
    clock.advance(hours=1, minutes=59)
    assert sessions.lookup(token) is not None  # slides last_seen forward
    clock.advance(hours=1, minutes=59)
    assert sessions.lookup(token) is not None
    clock.advance(hours=2)
    assert sessions.lookup(token) is None


def test_logout_and_purge(
    db: Database, sessions: SessionStore, agent: Member, clock: FakeClock
) -> None:
    short, _ = sessions.create(agent.id, timedelta(minutes=30))
    long, _ = sessions.create(agent.id, timedelta(hours=12))
    out, _ = sessions.create(agent.id)
    assert sessions.delete(out) and not sessions.delete(out)
    assert sessions.lookup(out) is None
    clock.advance(minutes=31)
    assert sessions.purge_expired() == 1
    assert sessions.lookup(short) is None and sessions.lookup(long) is not None
    clock.advance(hours=2, minutes=1)  # idle
    assert sessions.purge_expired() == 1
    with db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar() == 0


def test_disabling_or_a_new_password_ends_sessions(
    sessions: SessionStore, member_store: MemberStore, agent: Member
) -> None:
    first, _ = sessions.create(agent.id)
    member_store.set_password(agent.id, PASSWORD + " again")
    assert sessions.lookup(first) is None
    second, _ = sessions.create(agent.id)
    member_store.disable(agent.id)
    assert sessions.lookup(second) is None
    with pytest.raises(MemberDisabledError):
        sessions.create(agent.id)
    with pytest.raises(UnknownMemberError):
        sessions.create(999)
    with pytest.raises(ValueError, match="positive"):
        sessions.create(agent.id, timedelta(0))


def test_without_an_idle_limit_only_the_ttl_counts(
    db: Database, agent: Member, clock: FakeClock
) -> None:
    sessions = SessionStore(db, now=clock, idle=None)
    token, _ = sessions.create(agent.id, timedelta(days=2))
    clock.advance(days=1, hours=23)
    assert sessions.lookup(token) is not None
    clock.advance(hours=1)
    assert sessions.lookup(token) is None
