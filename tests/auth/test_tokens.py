"""API tokens: scopes within the role, secrets never stored, refusal of dead tokens."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.auth.errors import (
    MemberDisabledError,
    ScopeError,
    ScopeNotAllowed,
    TokenRequestError,
    UnknownMemberError,
    UnknownTokenError,
)
from accord.auth.members import Member, MemberStore
from accord.auth.scopes import CASES_READ, CASES_WRITE, MEMBERS_ADMIN, NOTES_READ, TOKENS_ADMIN
from accord.auth.tokens import TOKEN, TokenStore, token_hash
from accord.store.database import Database
from accord.store.tables import api_tokens, metadata

from .helpers import FakeClock


@pytest.fixture
def tokens(db: Database, clock: FakeClock) -> TokenStore:
    return TokenStore(db, now=clock)


def test_create_and_authenticate(tokens: TokenStore, agent: Member) -> None:
    created = tokens.create(agent.id, "inbox sync", [CASES_WRITE, CASES_READ, CASES_READ])
    assert TOKEN.fullmatch(created.token) and len(created.token) == 47
    assert created.scopes == (CASES_READ, CASES_WRITE)
    assert created.token not in repr(created)
    grant = tokens.authenticate(created.token)
    assert grant is not None
    assert grant.member == agent and grant.token_id == created.id
    assert grant.scopes == {CASES_READ, CASES_WRITE}
    assert grant.allows(CASES_READ) and not grant.allows(NOTES_READ)
    assert tokens.create(agent.id, "other", [CASES_READ]).token != created.token


def test_scopes_beyond_the_role_are_refused(
    tokens: TokenStore, agent: Member, admin: Member
) -> None:
    with pytest.raises(ScopeNotAllowed) as caught:
        tokens.create(agent.id, "too much", [CASES_READ, MEMBERS_ADMIN, TOKENS_ADMIN])
    assert caught.value.scopes == [MEMBERS_ADMIN, TOKENS_ADMIN]
    assert "agent" in str(caught.value)
    with pytest.raises(ScopeError, match="unknown scope"):
        tokens.create(admin.id, "typo", ["cases:delete"])
    with pytest.raises(ScopeError, match="at least one scope"):
        tokens.create(admin.id, "nothing", [])
    assert tokens.list() == []
    assert tokens.create(admin.id, "admin", [MEMBERS_ADMIN, TOKENS_ADMIN]).scopes


def test_bad_requests_are_refused(tokens: TokenStore, agent: Member, clock: FakeClock) -> None:
    with pytest.raises(TokenRequestError, match="name"):
        tokens.create(agent.id, "  ", [CASES_READ])
    with pytest.raises(TokenRequestError, match="control"):
        tokens.create(agent.id, "bad\nname", [CASES_READ])
    with pytest.raises(TokenRequestError, match="future"):
        tokens.create(agent.id, "late", [CASES_READ], expires_at=clock())
    with pytest.raises(UnknownMemberError):
        tokens.create(999, "ghost", [CASES_READ])
    with pytest.raises(ValueError, match="timezone-aware"):
        tokens.create(agent.id, "naive", [CASES_READ], expires_at=clock().replace(tzinfo=None))


def test_plaintext_is_never_stored(db: Database, tokens: TokenStore, agent: Member) -> None:
    created = tokens.create(agent.id, "secret keeper", [CASES_READ])
    secret = created.token.removeprefix("acc_")
    with db.read() as conn:
        stored = conn.execute(sa.select(api_tokens.c.token_hash)).scalar_one()
        everything = [
            repr(tuple(row))
            for table in metadata.sorted_tables
            for row in conn.execute(sa.select(table))
        ]
    assert stored == token_hash(created.token)
    assert not any(secret in text for text in everything)
    if db.is_sqlite:  # the raw bytes of the database file and its write-ahead log, too
        path = Path(sa.make_url(db.url).database or "")
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                assert secret.encode() not in file.read_bytes()


def test_unknown_malformed_revoked_expired_and_disabled_are_refused(
    tokens: TokenStore, member_store: MemberStore, agent: Member, clock: FakeClock
) -> None:
    revoked = tokens.create(agent.id, "revoked", [CASES_READ])
    expiring = tokens.create(agent.id, "expiring", [CASES_READ], clock() + timedelta(days=1))
    live = tokens.create(agent.id, "live", [CASES_READ])
    assert tokens.authenticate("acc_" + "A" * 43) is None
    assert tokens.authenticate(live.token[:-1]) is None
    assert tokens.authenticate(live.token + "x") is None
    assert tokens.authenticate("") is None

    info = tokens.revoke(revoked.id)
    assert info.revoked_at == clock() and info.status(clock()) == "revoked"
    clock.advance(minutes=5)
    assert tokens.revoke(revoked.id).revoked_at == info.revoked_at  # idempotent
    assert tokens.authenticate(revoked.token) is None
    with pytest.raises(UnknownTokenError):
        tokens.revoke(999)

    assert tokens.authenticate(expiring.token) is not None
    clock.advance(days=1)
    assert tokens.authenticate(expiring.token) is None
    assert tokens.get(expiring.id).status(clock()) == "expired"  # type: ignore[union-attr]

    assert tokens.authenticate(live.token) is not None
    member_store.disable(agent.id)
    assert tokens.authenticate(live.token) is None
    with pytest.raises(MemberDisabledError):
        tokens.create(agent.id, "after", [CASES_READ])


def test_last_used_is_recorded(tokens: TokenStore, agent: Member, clock: FakeClock) -> None:
    created = tokens.create(agent.id, "bot", [CASES_READ])
    assert tokens.list()[0].last_used_at is None
    first = clock()
    tokens.authenticate(created.token)
    assert tokens.list()[0].last_used_at == first
    clock.advance(seconds=10)
    tokens.authenticate(created.token)  # within the minute: not written again
    assert tokens.list()[0].last_used_at == first
    clock.advance(minutes=2)
    tokens.authenticate(created.token)
    assert tokens.list()[0].last_used_at == clock()


def test_demotion_narrows_existing_tokens(
    tokens: TokenStore, member_store: MemberStore, admin: Member
) -> None:
    created = tokens.create(admin.id, "ops", [CASES_READ, MEMBERS_ADMIN])
    member_store.set_role(admin.id, "agent")
    grant = tokens.authenticate(created.token)
    assert grant is not None and grant.scopes == {CASES_READ}


def test_list_never_shows_secrets(
    tokens: TokenStore, agent: Member, admin: Member, clock: FakeClock
) -> None:
    a = tokens.create(agent.id, "a", [CASES_READ])
    b = tokens.create(admin.id, "b", [TOKENS_ADMIN], clock() + timedelta(hours=1))
    listed = tokens.list()
    assert [t.id for t in listed] == [a.id, b.id]
    assert [t.username for t in listed] == ["tom.baker", "ada"]
    assert listed[1].expires_at == clock() + timedelta(hours=1)
    assert listed[0].created_at == clock() and listed[0].status(clock()) == "active"
    assert [t.id for t in tokens.list(admin.id)] == [b.id]
    for info in listed:
        assert a.token not in repr(info) and b.token not in repr(info)
        assert not hasattr(info, "token") and not hasattr(info, "token_hash")
    assert tokens.get(999) is None
