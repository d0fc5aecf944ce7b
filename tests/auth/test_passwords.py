"""The password policy and argon2id hashing."""

from __future__ import annotations

from dataclasses import replace

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from accord.auth.errors import PasswordPolicyError
from accord.auth.passwords import MAX_LENGTH, MIN_LENGTH, Passwords, check_policy


def test_policy_needs_twelve_characters_and_says_so() -> None:
    with pytest.raises(PasswordPolicyError, match="at least 12 characters"):
        check_policy("x" * (MIN_LENGTH - 1))
    check_policy("kettle violin ma")  # twelve and more characters, not a common pattern
    with pytest.raises(PasswordPolicyError, match="too easy to guess"):
        check_policy("x" * MIN_LENGTH)  # long enough, but a repeat (issue 22, row 13)
    with pytest.raises(PasswordPolicyError, match="at most"):
        check_policy("x" * (MAX_LENGTH + 1))


def test_hash_round_trip_with_the_production_parameters() -> None:
    passwords = Passwords()
    hashed = passwords.hash("correct horse battery staple")
    assert hashed.startswith("$argon2id$") and "m=65536,t=3" in hashed
    assert "correct horse" not in hashed
    assert passwords.verify(hashed, "correct horse battery staple")
    assert not passwords.verify(hashed, "correct horse battery stapler")
    assert not passwords.needs_rehash(hashed)
    assert passwords.hash("correct horse battery staple") != hashed  # salted


def test_short_passwords_are_never_hashed(passwords: Passwords) -> None:
    with pytest.raises(PasswordPolicyError):
        passwords.hash("short")


def test_composed_and_decomposed_accents_are_one_password(passwords: Passwords) -> None:
    hashed = passwords.hash("caf\u00e9 au lait, s'il vous pla\u00eet")  # é, î composed
    assert passwords.verify(hashed, "cafe\u0301 au lait, s'il vous plai\u0302t")  # decomposed
    assert not passwords.verify(hashed, "cafe au lait, s'il vous plait")


def test_damaged_hashes_and_huge_passwords_do_not_verify(passwords: Passwords) -> None:
    hashed = passwords.hash("correct horse battery staple")
    assert not passwords.verify("not a hash", "correct horse battery staple")
    assert not passwords.verify(hashed[:-4], "correct horse battery staple")
    assert not passwords.verify(hashed, "x" * (MAX_LENGTH + 1))
    assert passwords.needs_rehash("not a hash")


def test_other_parameters_need_a_rehash(passwords: Passwords) -> None:
    cheap = passwords.hash("correct horse battery staple")
    stronger = Passwords(PasswordHasher.from_parameters(replace(CHEAPEST, time_cost=2)))
    assert stronger.needs_rehash(cheap)
    assert stronger.verify(cheap, "correct horse battery staple")  # old hashes still verify
    assert not stronger.verify_dummy("correct horse battery staple")
