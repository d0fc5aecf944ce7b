"""Node keys and event signatures: Ed25519 (libsodium through PyNaCl), pure functions.

An event is signed over a domain-separated form of its id,
``b"accord-event-v1\\0" + id``, so a signature can never be replayed as a
signature over anything else the node signs (HTTP requests, invites).
Public keys are written ``ed25519:<base64url, unpadded>``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from accord.core.errors import IntegrityError

EVENT_DOMAIN = b"accord-event-v1\0"
KEY_PREFIX = "ed25519:"
ID_PREFIX = "sha256:"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    """Decode unpadded base64url, accepting only the one canonical spelling.

    Python's decoder ignores unused low bits in the last character and skips foreign
    characters, which would give one key or signature several spellings.
    """
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise IntegrityError(f"not base64url: {text[:20]!r}") from exc
    if b64u(raw) != text:
        raise IntegrityError(f"not canonical unpadded base64url: {text[:20]!r}")
    return raw


def event_id(canonical_bytes: bytes) -> str:
    """The content address of an event: ``sha256:`` + hex digest of its canonical bytes."""
    return ID_PREFIX + hashlib.sha256(canonical_bytes).hexdigest()


_EVENT_ID = re.compile(r"sha256:[0-9a-f]{64}")


def is_event_id(value: object) -> bool:
    return isinstance(value, str) and _EVENT_ID.fullmatch(value) is not None


def is_public_key(value: object) -> bool:
    if not isinstance(value, str) or not value.startswith(KEY_PREFIX) or len(value) != 51:
        return False
    try:
        return len(unb64u(value[8:])) == 32
    except IntegrityError:
        return False


def fingerprint(public_key: str) -> str:
    """A short form people can read aloud and compare: 8 groups of 4 hex digits."""
    digest = hashlib.sha256(public_key.encode("ascii")).hexdigest()[:32].upper()
    return "-".join(digest[i : i + 4] for i in range(0, 32, 4))


class NodeKey:
    """A node's Ed25519 signing key. The seed never leaves this object except by ``seed``."""

    __slots__ = ("_signing", "public")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._signing = SigningKey(seed)
        self.public = KEY_PREFIX + b64u(bytes(self._signing.verify_key))

    @classmethod
    def generate(cls) -> NodeKey:
        return cls(bytes(SigningKey.generate()))

    @property
    def seed(self) -> bytes:
        return bytes(self._signing)

    def sign(self, message: bytes) -> str:
        """Sign raw bytes (callers add their own domain prefix)."""
        return b64u(self._signing.sign(message).signature)

    def sign_event_id(self, eid: str) -> str:
        return self.sign(EVENT_DOMAIN + eid.encode("ascii"))

    def __repr__(self) -> str:  # never show the seed
        return f"NodeKey({self.public})"


@lru_cache(maxsize=1024)
def _verify_key(public_key: str) -> VerifyKey:
    if not is_public_key(public_key):
        raise IntegrityError(f"not an Ed25519 public key: {public_key[:60]!r}")
    return VerifyKey(unb64u(public_key[len(KEY_PREFIX) :]))


def verify(public_key: str, message: bytes, signature: str) -> None:
    """Raise ``IntegrityError`` unless ``signature`` is ``public_key``'s over ``message``."""
    raw = unb64u(signature)
    if len(raw) != 64:
        raise IntegrityError("a signature is 64 bytes")
    try:
        _verify_key(public_key).verify(message, raw)
    except BadSignatureError as exc:
        raise IntegrityError("signature does not verify") from exc


def verify_event_signature(public_key: str, eid: str, signature: str) -> None:
    verify(public_key, EVENT_DOMAIN + eid.encode("ascii"), signature)
