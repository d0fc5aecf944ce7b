"""Standard Webhooks signatures (standardwebhooks.com) on every delivery, next to the
earlier ``Accord-Webhook-*`` headers for one release: checked by Accord's own verifiers, by
the example of docs/webhooks.md, and against the specification's published test vector."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from accord.integrations import webhooks as wh

from .conftest import Hub
from .receiver import receiving

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"

# The test vector of the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIME = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def doc_functions() -> dict[str, Any]:
    """The Python example of docs/webhooks.md, run as written."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/webhooks.md should hold one Python example"
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], str(DOCS), "exec"), namespace)
    return namespace


def vector_headers(signature: str = VECTOR_SIGNATURE) -> dict[str, str]:
    return {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIME),
        "webhook-signature": signature,
    }


def test_the_signature_is_the_standards_own_test_vector() -> None:
    assert wh.sign_standard(VECTOR_SECRET, VECTOR_ID, VECTOR_TIME, VECTOR_BODY) == (
        VECTOR_SIGNATURE
    )
    assert wh.verify_standard(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=VECTOR_TIME)
    doc = doc_functions()["verify_webhook"]
    doc(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=VECTOR_TIME)
    # another signature first, ours among several space-separated ones
    several = vector_headers(f"v1,{'A' * 43}= {VECTOR_SIGNATURE}")
    assert wh.verify_standard(VECTOR_SECRET, several, VECTOR_BODY, now=VECTOR_TIME)
    doc(VECTOR_SECRET, several, VECTOR_BODY, now=VECTOR_TIME)
    refusals: list[tuple[dict[str, str], bytes, float]] = [
        (vector_headers(), VECTOR_BODY + b" ", VECTOR_TIME),  # body changed
        ({**vector_headers(), "webhook-id": "msg_other"}, VECTOR_BODY, VECTOR_TIME),
        (vector_headers(), VECTOR_BODY, VECTOR_TIME + wh.TOLERANCE + 1),  # a replay
        ({**vector_headers(), "webhook-timestamp": "soon"}, VECTOR_BODY, VECTOR_TIME),
        (vector_headers("v1=" + VECTOR_SIGNATURE[3:]), VECTOR_BODY, VECTOR_TIME),
    ]
    for headers, body, now in refusals:
        assert not wh.verify_standard(VECTOR_SECRET, headers, body, now=now)
        with pytest.raises(ValueError):
            doc(VECTOR_SECRET, headers, body, now=now)


def test_our_secret_and_its_whsec_form_are_one_key() -> None:
    secret = wh.new_secret()
    standard = wh.standard_secret(secret)
    assert standard.startswith("whsec_")
    assert wh.sign_standard(secret, "whd_1", 1, b"{}") == wh.sign_standard(
        standard, "whd_1", 1, b"{}"
    )


def test_every_delivery_carries_both_formats(hub: Hub) -> None:
    with receiving() as receiver:
        created = hub.subscribe(receiver.url, events=["case.opened"], allow_private=True)
        hub.open_case()
        hub.run_until_idle()
        (received,) = receiver.delivered()
    secret, standard = created["secret"], created["standard_secret"]
    assert standard == wh.standard_secret(secret)
    headers = {k.lower(): v for k, v in received.headers.items()}
    payload = orjson.loads(received.body)
    assert headers["webhook-id"] == payload["id"] == headers["accord-webhook-id"]
    assert headers["webhook-timestamp"] == headers["accord-webhook-timestamp"]
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", headers["webhook-signature"])
    sent = int(headers["webhook-timestamp"])
    functions = doc_functions()
    for key in (secret, standard):
        assert wh.verify_standard(key, received.headers, received.body, now=sent)
        functions["verify_webhook"](key, received.headers, received.body, now=sent)
    # the earlier format, still sent and still verified for this release
    functions["verify_accord_webhook"](secret, received.headers, received.body, now=sent)
    assert wh.verify(
        secret,
        headers["accord-webhook-timestamp"],
        headers["accord-webhook-signature"],
        received.body,
        now=sent,
    )
