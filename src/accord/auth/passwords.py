"""Password policy and argon2id hashing.

argon2id (RFC 9106) through argon2-cffi, with its "low memory" RFC profile by default:
64 MiB and 3 passes make each guess costly on GPUs. ``needs_rehash`` lets a login
upgrade an old hash when the parameters are raised later. Passwords are NFC-normalised
first so the same password typed on two systems (composed or decomposed accents) is the
same bytes. The policy follows NIST SP 800-63B: at least 12 characters, at most 1024 so
nobody can make the server hash megabytes, and never a common or breached password — one
on the list of 30,000 passwords most found in breaches that the ``zxcvbn`` package ships,
or one its estimator finds guessable in fewer than 10^8 tries (``password1234``,
``qwertyuiop12``, ``letmein12345``: a listed password with digits around it).
"""

from __future__ import annotations

import functools
import logging
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY
from zxcvbn import zxcvbn  # type: ignore[import-untyped]
from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

from accord.auth.errors import PasswordPolicyError

MIN_LENGTH = 12
MAX_LENGTH = 1024
log = logging.getLogger("accord.auth")
MIN_GUESSES_LOG10 = 8  # zxcvbn's score 3: "safely unguessable" against online attacks


def check_policy(password: str) -> None:
    """Raise ``PasswordPolicyError`` unless ``password`` may be set as a new password."""
    length = len(unicodedata.normalize("NFC", password))
    if length < MIN_LENGTH:
        raise PasswordPolicyError(
            f"a password needs at least {MIN_LENGTH} characters (this one has {length}); "
            "a few unrelated words make a good one"
        )
    if length > MAX_LENGTH:
        raise PasswordPolicyError(f"a password may have at most {MAX_LENGTH} characters")
    normal = unicodedata.normalize("NFC", password)
    if normal.lower() in _common():
        log.warning("refused a new password: on the breached-password list")
        raise PasswordPolicyError(
            "this password is on the list of passwords most found in breaches; "
            "a few unrelated words make a good one"
        )
    # zxcvbn's time grows with the length; the first 100 characters say enough
    estimate = zxcvbn(normal[:100])
    if estimate["guesses_log10"] < MIN_GUESSES_LOG10:
        warning = estimate["feedback"].get("warning") or "it follows a common pattern"
        log.warning("refused a new password: guessable (%s)", warning)
        raise PasswordPolicyError(
            f"this password is too easy to guess ({warning.rstrip('.').lower()}); "
            "a few unrelated words make a good one"
        )


@functools.cache
def _common() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


class Passwords:
    """Hash and verify with one set of argon2id parameters.

    The default is the production profile; tests pass ``argon2.profiles.CHEAPEST`` to
    stay fast, which also exercises rehashing when the parameters differ.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        """Check the policy, then hash; the result embeds salt and parameters."""
        check_policy(password)
        return self.rehash(password)

    def rehash(self, password: str) -> str:
        """Hash a password that already verified, without the policy (it may predate it)."""
        return self.hasher.hash(_normal(password))

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches; a damaged or foreign hash is simply no match."""
        if len(password) > MAX_LENGTH:
            return False
        try:
            return self.hasher.verify(password_hash, _normal(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> bool:
        """Spend the time of a real verification, for a username that does not exist.

        Answering "no such user" faster than "wrong password" would tell an attacker
        which usernames exist. Always ``False``.
        """
        if self._dummy is None:
            self._dummy = self.hasher.hash("accord dummy password, never matches")
        self.verify(self._dummy, password)
        return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than this hasher's."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True


def _normal(password: str) -> str:
    return unicodedata.normalize("NFC", password)
