"""Inbound email, step one: raw RFC 5322 bytes in, one ``ParsedMail`` out — pure, no I/O.

**Why by hand on top of ``compat32``.** ``email.policy.default`` runs every header through
the header registry and parses about 330 mails a second; ``compat32`` builds the same MIME
tree about ten times faster and leaves headers raw. So the tree comes from
``BytesParser(policy=compat32)`` and this module decodes only the headers it needs — RFC 2047
encoded words, addresses, dates, message-ids, RFC 2231 parameters — itself, with the
charset fallbacks real mail needs (mislabelled Windows-1252, ``x-sjis``, ``ks_c_5601-1987``,
raw 8-bit headers, unknown names).

**Never raises on a mail**, however broken: only input that is not a mail at all (empty, or
not starting with a header field) raises ``MailParseError``. Everything else parses
best-effort and says what was wrong in ``flags``:

``malformed-headers``   From/Date missing or unparseable, a header that may appear once
                        repeated, a Message-ID present but malformed, or the parser's header
                        defects (a body line in the header section).
``no-message-id``       Message-ID missing or malformed; the one given is synthesised from
                        the SHA-256 of the raw bytes, so a retried delivery dedupes.
``malformed-mime``      missing or unterminated multipart boundaries.
``header-injection``    the decoded subject or a display name held CR/LF (removed).
``charset-fallback``    some text was decoded with a guessed charset (undeclared 8-bit that
                        is not UTF-8, an unknown or wrong declared charset).
``no-body``             no text at all.
``list-mail``, ``auto-response-suppressed``
                        a person's mail through a list or alias (List-Id, List-Unsubscribe,
                        ``Precedence: list``) or marked ``X-Auto-Response-Suppress``: filed,
                        never answered automatically.
``oversized-attachment``, ``too-many-parts``, ``too-deep``, ``too-many-recipients``
                        a ``MailLimits`` bound was reached; the mail is kept.
``body-truncated``      HTML longer than ``html.MAX_HTML`` characters; the rest is not used.
``encrypted``           S/MIME (``application/pkcs7-mime``) or PGP (``multipart/encrypted``,
                        an inline ``BEGIN PGP MESSAGE``) content Accord cannot read.
``signed``              an S/MIME or PGP signature (not checked: the original is kept).
``tnef``                an Outlook ``winmail.dat`` (TNEF) was unpacked into its attachments
                        (with ``tnefparse``); one that does not unpack stays as it came.

**Forwards.** A ``message/rfc822`` part stays an ``.eml`` attachment, and is also read as a
message: its From, Date, Subject and text are in ``forwarded`` and its attachments join the
mail's own, within the same limits.

**Limits.** Parts are walked iteratively up to ``max_parts`` and ``max_depth``. Attachments
are never unpacked (a zip bomb is just its stored bytes). An attachment over
``max_attachment_bytes``, or past ``max_total_bytes`` with the ones before it, keeps its
name, type, size and hash but not its data. The stdlib parser's cost grows with the square
of multipart nesting, so a mail declaring more than ``max_parts`` multipart/message
containers is cut before the first one over that count ("too-many-parts").
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import logging
import mimetypes
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import (
    CloseBoundaryNotFoundDefect,
    FirstHeaderLineIsContinuationDefect,
    MisplacedEnvelopeHeaderDefect,
    MissingHeaderBodySeparatorDefect,
    MultipartInvariantViolationDefect,
    NoBoundaryInMultipartDefect,
    StartBoundaryNotFoundDefect,
)
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import decode_params, getaddresses, parsedate_to_datetime, unquote
from functools import lru_cache

from accord.channels.email.html import MAX_HTML, html_to_text, sanitize_html
from accord.channels.email.quotes import Reply, split_html, split_reply, unflow

log = logging.getLogger("accord.channels.email")


class MailParseError(ValueError):
    """The input is not a mail at all: empty, or no header section."""


@dataclass(frozen=True)
class MailLimits:
    """Bounds on what one mail may cost; reaching one sets a flag, never rejects the mail."""

    max_attachment_bytes: int = 25 * 1024 * 1024  # per attachment (decoded)
    max_total_bytes: int = 50 * 1024 * 1024  # all attachments together
    max_parts: int = 200  # MIME parts walked
    max_depth: int = 20  # multipart / message/rfc822 nesting
    max_recipients: int = 100  # addresses kept from To/Cc


@dataclass(frozen=True)
class Attachment:
    """One attachment; ``data`` is ``None`` when it was over a limit (``oversized``)."""

    filename: str  # safe display name: no path, no control characters, <= 200 characters
    media_type: str  # lower-case "type/subtype"
    size: int  # decoded size in bytes
    sha256: str  # hex of the decoded bytes
    data: bytes | None
    inline: bool  # shown inside the HTML (has a Content-ID, not disposition "attachment")
    content_id: str | None  # without <>
    oversized: bool = False


@dataclass(frozen=True)
class Forwarded:
    """A message attached to the mail (``message/rfc822``), read as a message."""

    sender: str  # "Name <addr>" as written, decoded, one line; "" if none
    date: datetime | None
    subject: str
    text: str


@dataclass(frozen=True)
class ParsedMail:
    """What the inbound pipeline needs from one mail; all strings NFC, one line where named."""

    message_id: str  # "<…>", whitespace removed; else "<sha256-of-raw@accord.invalid>"
    in_reply_to: tuple[str, ...]  # message-ids, "<…>", in order, no repeats
    references: tuple[str, ...]
    sender: str  # lower-case addr-spec of From, else Sender, else Return-Path; "" if none
    sender_name: str  # decoded display name, one line
    reply_to: str  # addr-spec of Reply-To or ""
    to: tuple[str, ...]  # lower-case addr-specs, together with cc at most max_recipients
    cc: tuple[str, ...]
    recipients_total: int  # To + Cc addresses before the cap
    subject: str  # decoded, one line
    date: datetime | None  # aware, UTC; None if missing or unparseable
    text: str  # all plain text (text/plain, else from the HTML), "\n" line ends
    new_text: str  # text without quoted history and signature (see ``quotes``)
    quoted: str
    signature: str
    html: str | None  # sanitised, if the mail had an HTML part
    attachments: tuple[Attachment, ...]
    auto: str | None  # why it is machine-made: auto-submitted, precedence, auto-reply,
    #                   mailer-daemon, bounce; None for a person's mail
    bounced_ids: tuple[str, ...]  # for a bounce: the Message-ID(s) of the mail that bounced
    flags: tuple[str, ...]  # sorted; see the module docstring
    size: int  # len(raw)
    reply_to_name: str = ""  # decoded display name of Reply-To, one line
    list_post: str = ""  # the List-Post mailto: address of a mailing list, lower-case
    listed: bool = False  # the mail came through a list (List-Id, List-Post, List-Unsubscribe)
    forwarded: tuple[Forwarded, ...] = ()  # attached messages, read (see the docstring)


_PARSER = BytesParser(policy=compat32)
_HEADER_PARSER = BytesHeaderParser(policy=compat32)
_CRLF = compat32.clone(linesep="\r\n")

# -- text hygiene --------------------------------------------------------------------------

# C0/C1 controls, line/paragraph separators and the bidi overrides used to disguise names
# ("invoice\u202efdp.exe").
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_SPACES = re.compile(r" {2,}")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_WHITESPACE = re.compile(r"\s+")


def _nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _one_line(text: str) -> tuple[str, bool]:
    """Controls out, any run of whitespace (CR/LF, tab, no-break…) one space; True if CR/LF."""
    if text.isascii() and text.isprintable():
        return _SPACES.sub(" ", text).strip(), False
    broke = "\r" in text or "\n" in text
    text = _CONTROL.sub(lambda m: " " if m.group(0) in "\t\r\n" else "", text)
    return _nfc(_WHITESPACE.sub(" ", text).strip()), broke


def _body_text(text: str) -> str:
    """``\\n`` line ends, no control characters but tab and newline, NFC."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _nfc(_BODY_CONTROL.sub("", text))


# -- charsets ------------------------------------------------------------------------------

# Names mail uses that Python does not know, or knows as a narrower charset than senders use.
_CHARSET_ALIASES = {
    **dict.fromkeys(("x-sjis", "sjis", "shift_jis", "shift-jis", "windows-31j"), "cp932"),
    **dict.fromkeys(("iso-2022-jp", "csiso2022jp"), "iso2022_jp_ext"),
    **dict.fromkeys(("ks_c_5601-1987", "ks_c_5601", "ksc5601", "euc-kr"), "cp949"),
    **dict.fromkeys(("gb2312", "gbk", "x-gbk", "cn-gb"), "gb18030"),
    **dict.fromkeys(("big5", "x-big5"), "big5hkscs"),
    **dict.fromkeys(("iso-8859-8-i", "iso-8859-8-e"), "iso8859_8"),
    **dict.fromkeys(("iso-8859-6-i", "iso-8859-6-e"), "iso8859_6"),
    **dict.fromkeys(("tis-620", "windows-874"), "cp874"),
    **dict.fromkeys(("x-mac-roman", "macintosh"), "mac_roman"),
    "unicode-1-1-utf-7": "utf-7",
}
# Text codecs Python has that no mail should be decoded with.
_NOT_MAIL_CODECS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "charmap"}
)


@lru_cache(maxsize=256)
def _codec(charset: str) -> str | None:
    """Python's codec name for a declared charset, or ``None`` if unknown or unsuitable."""
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not name or len(name) > 40:
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, UnicodeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_MAIL_CODECS:
        return None
    if info.name in ("latin-1", "iso8859-1"):
        return "cp1252"  # Windows-1252 labelled ISO-8859-1 is everywhere; printable superset
    return "utf-8" if info.name == "ascii" else info.name


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, bool]:
    """Text of ``data`` in its declared charset, falling back sensibly; True if guessed.

    Undeclared or US-ASCII is read as UTF-8; unknown names try UTF-8 then Windows-1252; a
    declared charset that does not fit tries UTF-8 (the usual mislabel), then itself with
    replacement characters. ISO-8859-1 is read as Windows-1252 (smart quotes, €), unless the
    bytes are valid UTF-8 with non-ASCII in them, which Latin-1 text never is.
    """
    codec = _codec(charset) if charset else "utf-8"
    if codec is None:
        try:
            return data.decode("utf-8"), True
        except UnicodeDecodeError:
            return data.decode("cp1252", "replace"), True
    if codec == "cp1252" and not data.isascii():
        try:  # valid UTF-8 with 8-bit bytes is never real Latin-1 text: a mislabel
            return data.decode("utf-8"), True
        except UnicodeDecodeError:
            pass
    try:
        return data.decode(codec), False
    except (UnicodeError, ValueError, LookupError):
        pass
    if codec == "cp1252":  # the five bytes Windows-1252 leaves undefined
        return data.decode("latin-1"), False
    if codec != "utf-8":
        try:
            return data.decode("utf-8"), True
        except UnicodeDecodeError:
            try:
                return data.decode(codec, "replace"), True
            except (UnicodeError, ValueError, LookupError):
                pass
    return data.decode("cp1252", "replace"), True


# -- headers -------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([QqBb])\?([^?]*)\?=")


def _from_8bit(value: str) -> tuple[str, bool]:
    """Raw 8-bit header bytes (surrogate-escaped by the parser) as UTF-8, else Windows-1252."""
    if value.isascii():
        return value, False
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace"), True


def _word_bytes(encoding: str, text: str) -> bytes | None:
    if encoding in "qQ":
        return binascii.a2b_qp(text.encode("utf-8", "replace"), header=True)
    data = text.encode("ascii", "ignore").rstrip(b"=")
    if len(data) % 4 == 1:
        data = data[:-1]
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except binascii.Error:
        return None


def decode_words(value: str) -> tuple[str, bool]:
    """RFC 2047 encoded words decoded; adjacent words in one charset decoded together.

    Joining the bytes first matters: encoders split multi-byte characters across words
    (Japanese B-words, long UTF-8 Q-words). A word that does not decode stays as written.
    """
    if "=?" not in value:
        return value, False
    out: list[str] = []
    run = bytearray()
    run_charset: str | None = None
    guessed = False
    after_word = False
    position = 0

    def flush() -> None:
        nonlocal run, run_charset, guessed
        if run_charset is not None:
            text, fell_back = decode_bytes(bytes(run), run_charset)
            out.append(text)
            guessed |= fell_back
        run, run_charset = bytearray(), None

    for match in _ENCODED_WORD.finditer(value):
        gap = value[position : match.start()]
        position = match.end()
        if gap and not (after_word and gap.isspace()):
            flush()
            out.append(gap)
        charset = match.group(1).lower()
        decoded = _word_bytes(match.group(2), match.group(3))
        if decoded is None:
            flush()
            out.append(match.group(0))
            after_word = False
            continue
        if run_charset is not None and charset != run_charset:
            flush()
        run_charset = charset
        run += decoded
        after_word = True
    flush()
    out.append(value[position:])
    return "".join(out), guessed


class _Headers:
    """The top-level header fields by lower-case name; values unfolded and 8-bit decoded
    when first read (a mail has dozens of trace headers nobody reads)."""

    def __init__(self, msg: Message) -> None:
        self.fields: dict[str, list[str]] = {}
        self.guessed = False
        self._decoded: set[str] = set()
        for name, value in msg.raw_items():
            self.fields.setdefault(name.lower().rstrip(), []).append(value)

    def all(self, name: str) -> list[str]:
        values = self.fields.get(name)
        if not values:
            return []
        if name not in self._decoded:
            self._decoded.add(name)
            for i, value in enumerate(values):
                text, guessed = _from_8bit(_FOLD.sub("", value) if "\n" in value else value)
                self.guessed |= guessed
                values[i] = text
        return values

    def first(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def count(self, name: str) -> int:
        return len(self.fields.get(name, ()))


_SINGLETONS = ("from", "sender", "to", "cc", "subject", "date", "message-id", "in-reply-to")
_ADDRESS_CHUNK = re.compile(r'(?:"(?:[^"\\]|\\.)*"?|\((?:[^()\\]|\\.)*\)?|<[^<>]*>?|[^,"(<])+')
_ADDR_SPEC = re.compile(r'[^@\s<>()\[\],;:"\\\x00-\x1f\x7f]+@[^@\s<>()\[\],;:"\\\x00-\x1f\x7f]+')
_HIDDEN = re.compile("\ue000(\\d+)\ue001")
# The mailbox forms nearly every mail uses, read without the (slow) general parser:
# addr@host, Name <addr@host>, "Name" <addr@host>. No two repeats can trade characters, so
# a hostile header cannot make this backtrack.
_SIMPLE_MAILBOX = re.compile(
    r'\s*(?:"((?:[^"\\]|\\.)*)"\s*|([^"<>(),;:@\\]*))<([^<>\s"(),;:@\\]+@[^<>\s"(),;:@\\]+)>\s*'
    r'|\s*([^<>\s"(),;:@\\]+@[^<>\s"(),;:@\\]+)\s*'
)
_MSGID = re.compile(r"<([^<>]+)>")
_BARE_MSGID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")
_MAX_ID = 500
_LIST_POST = re.compile(r"<mailto:([^<>?\s]+@[^<>?\s]+)", re.I)
_MAX_MAILBOX = 1_000  # characters of one address with its display name
_MAX_COMMENTS = 8
_MAX_REFERENCES = 200


def _addresses(values: list[str], keep: int) -> tuple[list[tuple[str, str]], int]:
    """Up to ``keep`` distinct (name, addr-spec) pairs from some address headers, and the total.

    Only the first addresses are fully parsed: ``getaddresses`` costs ~40 µs an address, so
    10,000 recipients would cost half a second. The rest are counted by their ``@``.
    """
    words: list[str] = []

    def hide(match: re.Match[str]) -> str:
        words.append(match.group(0))
        return f"\ue000{len(words) - 1}\ue001"

    def show(match: re.Match[str]) -> str:
        return words[int(match.group(1))]

    # Encoded words are opaque atoms to the address parser: "=?utf-8?q?a=0D=0ABcc:_x@y?="
    # must not be read as a group ("Bcc:") and an address ("x@y").
    values = [_ENCODED_WORD.sub(hide, value) if "=?" in value else value for value in values]
    chunks = [c for value in values for c in _ADDRESS_CHUNK.findall(value) if c.strip()]
    parsed_count = max(2 * keep + 10, 20)
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, addr in _mailboxes(chunks[:parsed_count]):
        addr = addr.strip().lower()
        if _ADDR_SPEC.fullmatch(addr) and len(addr) <= 320 and addr not in seen:
            seen.add(addr)
            found.append((_HIDDEN.sub(show, name) if words else name, addr))
    total = len(found) + sum(1 for c in chunks[parsed_count:] if "@" in c)
    return found[:keep], total


def _mailboxes(chunks: list[str]) -> list[tuple[str, str]]:
    """(name, address) of each mailbox; ``getaddresses`` only when a chunk is not simple.

    The stdlib parser is pure Python and recursive, so chunks too long to be a mailbox or
    with more than a few comments (a thousand nested "(" exhaust the stack) are dropped.
    """
    simple = []
    for chunk in chunks:
        match = _SIMPLE_MAILBOX.fullmatch(chunk)
        if match is None:
            sane = [c for c in chunks if len(c) <= _MAX_MAILBOX and c.count("(") <= _MAX_COMMENTS]
            try:
                return getaddresses(sane)
            except RecursionError:
                return []
        quoted, plain, addr, bare = match.groups()
        if bare is not None:
            simple.append(("", bare))
        else:
            name = _ESCAPED.sub(r"\1", quoted) if quoted is not None else plain.strip()
            simple.append((name, addr))
    return simple


def _first_address(headers: _Headers, name: str) -> tuple[str, str] | None:
    values = headers.all(name)
    if not values:
        return None
    found, _ = _addresses(values[:1], 1)
    return found[0] if found else None


def _display_name(name: str) -> tuple[str, bool, bool]:
    """(one-line decoded name, charset guessed, held CR/LF)."""
    decoded, guessed = decode_words(name)
    line, broke = _one_line(decoded)
    return line.strip("\"' "), guessed, broke


def _message_id(value: str | None) -> str | None:
    if value is None:
        return None
    compact = _WHITESPACE.sub("", value)
    match = _MSGID.search(compact)
    candidate = match.group(1) if match else compact
    if len(candidate) <= _MAX_ID and _BARE_MSGID.fullmatch(candidate):
        return f"<{candidate}>"
    return None


def _message_ids(values: Iterable[str]) -> tuple[str, ...]:
    """Every ``<id>`` in some References/In-Reply-To fields, in order, without repeats."""
    ids: dict[str, None] = {}
    for value in values:
        for match in _MSGID.finditer(value):
            candidate = _WHITESPACE.sub("", match.group(1))
            if 0 < len(candidate) <= _MAX_ID and candidate.isascii() and candidate.isprintable():
                ids[f"<{candidate}>"] = None
    found = tuple(ids)
    if len(found) > _MAX_REFERENCES:  # keep the thread's root and its most recent ancestors
        found = found[:1] + found[-(_MAX_REFERENCES - 1) :]
    return found


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (ValueError, TypeError, OverflowError, IndexError):
        return None
    try:
        if parsed.tzinfo is None:  # "-0000": UTC, origin unknown (RFC 5322 3.3)
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


# -- automatic mail (RFC 3834 and the rest of the world's habits) --------------------------

_AUTO_SUBJECT = re.compile(
    r"\s*(?:out\s+of\s+(?:the\s+)?office|automatic\s+reply|auto(?:matic)?[-\s]?(?:reply|response)"
    r"|abwesenheitsnotiz|automatische\s+antwort|réponse\s+automatique|absence|"
    r"respuesta\s+automática|risposta\s+automatica|fuera\s+de\s+la\s+oficina)",
    re.I,
)
_PRECEDENCE = frozenset({"bulk", "junk", "auto_reply", "auto-reply"})
_SUPPRESS = frozenset({"all", "oof", "autoreply"})
_NO = frozenset({"no", "false", "0"})


def _auto(
    headers: _Headers, sender: str, subject: str, media_type: str, params: dict[str, str]
) -> str | None:
    report = params.get("report-type", "").strip().lower()
    if media_type == "multipart/report" and report == "delivery-status":
        return "bounce"
    if sender.partition("@")[0] in ("mailer-daemon", "postmaster"):
        return "mailer-daemon"
    submitted = (headers.first("auto-submitted") or "").split(";")[0].split("(")[0].strip()
    if submitted and submitted.lower() != "no":
        return "auto-submitted"
    for name in ("x-autoreply", "x-autorespond", "x-autogenerated"):
        value = headers.first(name)
        if value is not None and value.strip().lower() not in _NO:
            return "auto-reply"
    suppress = headers.first("x-auto-response-suppress")
    null_sender = (headers.first("return-path") or "").strip() in ("<>", "")
    weak = suppress is not None or ("return-path" in headers.fields and null_sender)
    if weak and _AUTO_SUBJECT.match(subject):
        return "auto-reply"
    if (headers.first("precedence") or "").strip().lower() in _PRECEDENCE:
        return "precedence"
    return None


def _quiet(headers: _Headers) -> set[str]:
    """What asks for no automatic answer on a person's mail: it is filed as any other
    (a team alias or Google Group carries List-Id; web apps mark mail people wrote with
    X-Auto-Response-Suppress), only the acknowledgement is left out (RFC 3834 5)."""
    found: set[str] = set()
    suppress = headers.first("x-auto-response-suppress")
    if set(re.split(r"[\s,;]+", (suppress or "").lower())) & _SUPPRESS:
        found.add("auto-response-suppressed")
    listed = "list-id" in headers.fields or "list-unsubscribe" in headers.fields
    if listed or (headers.first("precedence") or "").strip().lower() == "list":
        found.add("list-mail")
    return found


# -- MIME parts ----------------------------------------------------------------------------

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')
_ESCAPED = re.compile(r"\\(.)")
_RESERVED = re.compile(r'[<>:"|?*]+')
_PATH = re.compile(r"[/\\]")
_DEVICE = re.compile(r"(?:con|prn|aux|nul|com\d|lpt\d)(?:\..*)?", re.I)
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_HEADER_TYPES = frozenset({"text/rfc822-headers", "message/global-headers"})
_HEADER_ID = re.compile(r"(?im)^message-id:[ \t]*(?:\r?\n[ \t]+)?(<[!-;=?-~]+>)")
# Names for attachments that came without one, by media type; else "attachment.bin".
_FALLBACK_NAMES = {
    "text/calendar": "invite.ics",
    "application/ics": "invite.ics",
    "message/rfc822": "forwarded-message.eml",
    "message/global": "forwarded-message.eml",
    "message/delivery-status": "delivery-status.txt",
    "message/global-delivery-status": "delivery-status.txt",
    "message/disposition-notification": "disposition-notification.txt",
    "text/rfc822-headers": "original-headers.txt",
    "message/global-headers": "original-headers.txt",
    "text/plain": "attachment.txt",
    "text/html": "attachment.html",
    "image/jpeg": "image.jpg",
    "image/png": "image.png",
    "image/gif": "image.gif",
    "application/pdf": "attachment.pdf",
    "application/zip": "attachment.zip",
}
_MAX_NAME = 200
_BODY_DEFECTS = (
    NoBoundaryInMultipartDefect,
    StartBoundaryNotFoundDefect,
    CloseBoundaryNotFoundDefect,
    MultipartInvariantViolationDefect,
)
_HEADER_DEFECTS = (
    MissingHeaderBodySeparatorDefect,
    FirstHeaderLineIsContinuationDefect,
    MisplacedEnvelopeHeaderDefect,
)


def _params(value: str | None) -> tuple[str, dict[str, str]]:
    """A MIME header's main value (lower-case) and parameters (RFC 2231 decoded)."""
    if not value:
        return "", {}
    main, _, rest = value.partition(";")
    pairs: list[tuple[str, str]] = []
    for match in _PARAM.finditer(";" + rest):
        name = match.group(1).lower()
        raw = match.group(2).strip()
        if len(name) > 64:  # decode_params would int() a continuation number of any length
            continue
        if raw.startswith('"'):
            raw = raw[1:-1] if len(raw) > 1 and raw.endswith('"') else raw[1:]
            raw = _ESCAPED.sub(r"\1", raw)
        pairs.append((name, raw))
    params: dict[str, str] = {}
    if not any("*" in name for name, _ in pairs):  # no RFC 2231 parameters
        for name, raw in pairs:
            params.setdefault(name, raw)
        return main.strip().lower(), params
    for name, decoded in decode_params([("", main), *pairs])[1:]:
        if name in params:
            continue
        if isinstance(decoded, tuple):  # RFC 2231: name*=charset'language'%XX…
            charset, _, text = decoded
            raw = unquote(text)
            try:
                params[name] = decode_bytes(raw.encode("latin-1"), charset or "utf-8")[0]
            except UnicodeEncodeError:
                params[name] = raw
        else:
            params[name] = unquote(decoded)
    return main.strip().lower(), params


def _safe_filename(name: str | None, fallback: str) -> str:
    """A name safe to show and to save: last path component, no controls, <= 200 chars."""
    if name:
        name = _nfc(decode_words(name)[0])
        name = _PATH.split(name)[-1]
        name = _CONTROL.sub("", name)
        name = " ".join(_RESERVED.sub("_", name).split()).strip(" .")
        if _DEVICE.fullmatch(name):
            name = "_" + name
        if len(name) > _MAX_NAME:
            stem, dot, ext = name.rpartition(".")
            if dot and 0 < len(ext) <= 16:
                name = stem[: _MAX_NAME - len(ext) - 1].rstrip(" .") + "." + ext
            else:
                name = name[:_MAX_NAME].rstrip(" .")
    return name or fallback


_PART_HEADERS = frozenset(
    {"content-type", "content-disposition", "content-id", "content-transfer-encoding"}
)


def _part_headers(part: Message) -> dict[str, str]:
    """The MIME headers of one part (the first of each), unfolded and 8-bit decoded."""
    found: dict[str, str] = {}
    for name, value in part.raw_items():
        key = name.lower().rstrip()
        if key in _PART_HEADERS and key not in found:
            found[key] = _from_8bit(_FOLD.sub("", value) if "\n" in value else value)[0]
    return found


@dataclass
class _Body:
    """What walking the MIME tree collects (mutable scratch state of one parse)."""

    limits: MailLimits
    flags: set[str]
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    kept_bytes: int = 0
    original_ids: list[str] = field(default_factory=list)
    walked: int = 0  # parts walked, forwarded messages' included
    forwarded: list[Forwarded] = field(default_factory=list)

    def attach(self, data: bytes, name: str, media_type: str, about: _Part) -> None:
        size = len(data)
        limits = self.limits
        oversized = (
            size > limits.max_attachment_bytes or self.kept_bytes + size > limits.max_total_bytes
        )
        if oversized:
            self.flags.add("oversized-attachment")
        else:
            self.kept_bytes += size
        cid = _WHITESPACE.sub("", _CONTROL.sub("", about.headers.get("content-id", "")))
        content_id = cid.strip("<>") or None
        self.attachments.append(
            Attachment(
                filename=name,
                media_type=media_type,
                size=size,
                sha256=hashlib.sha256(data).hexdigest(),
                data=None if oversized else data,
                inline=content_id is not None and about.disposition != "attachment",
                content_id=content_id,
                oversized=oversized,
            )
        )


@dataclass(frozen=True)
class _Part:
    """One MIME part's headers, read once."""

    headers: dict[str, str]
    media_type: str
    params: dict[str, str]  # of Content-Type
    disposition: str
    filename: str | None


def _describe(part: Message) -> _Part:
    headers = _part_headers(part)
    media_type, params = _params(headers.get("content-type"))
    if not media_type:
        media_type = part.get_default_type()  # text/plain, message/rfc822 in a digest
    elif "/" not in media_type:
        media_type = "text/plain"  # RFC 2045 5.2: an invalid Content-Type means text/plain
    elif not _MEDIA_TYPE.fullmatch(media_type):
        media_type = "application/octet-stream"
    disposition, disposition_params = _params(headers.get("content-disposition"))
    filename = disposition_params.get("filename") or params.get("name")
    return _Part(headers, media_type, params, disposition, filename)


def _walk(msg: Message, body: _Body, start: int = 0) -> None:
    """Collect text, HTML and attachments, iteratively and within the limits."""
    stack: list[tuple[Message, int]] = [(msg, start)]
    while stack:
        part, depth = stack.pop()
        body.walked += 1
        if body.walked > body.limits.max_parts:
            body.flags.add("too-many-parts")
            return
        if any(isinstance(defect, _BODY_DEFECTS) for defect in part.defects):
            body.flags.add("malformed-mime")
        payload = part.get_payload()
        if not isinstance(payload, list):
            _leaf(part, _describe(part), body)
        elif part.get_content_maintype() != "multipart":
            _message_part(_describe(part), payload, body, depth)
        elif depth >= body.limits.max_depth:
            body.flags.add("too-deep")
        else:
            subtype = part.get_content_subtype()
            if subtype in ("encrypted", "signed"):  # RFC 1847: PGP/MIME and S/MIME
                body.flags.add(subtype)
            children = [c for c in payload if isinstance(c, Message)]
            stack.extend((child, depth + 1) for child in reversed(children))


def _leaf(part: Message, about: _Part, body: _Body) -> None:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        data = b""
    media_type = about.media_type
    if media_type.startswith("multipart/"):  # no boundary: read what is there as text
        media_type = "text/plain"
    textual = media_type in ("text/plain", "text/html")
    if textual and about.disposition != "attachment" and not about.filename:
        text, guessed = decode_bytes(data, about.params.get("charset"))
        if guessed:
            body.flags.add("charset-fallback")
        text = _body_text(text)
        if "-----BEGIN PGP " in text:  # inline PGP (RFC 4880 armour in the text itself)
            if "-----BEGIN PGP MESSAGE-----" in text:
                body.flags.add("encrypted")
            elif "-----BEGIN PGP SIGNED MESSAGE-----" in text:
                body.flags.add("signed")
        if media_type == "text/html":
            body.html.append(text)
        else:
            if about.params.get("format", "").lower() == "flowed":
                text = unflow(text, delsp=about.params.get("delsp", "").lower() == "yes")
            body.plain.append(text)
        return
    if media_type in _HEADER_TYPES:
        body.original_ids += _HEADER_ID.findall(data.decode("latin-1"))
    if media_type in _SMIME_TYPES:  # S/MIME: enveloped (encrypted) or opaque signed data
        smime = about.params.get("smime-type", "").lower()
        body.flags.add("signed" if smime == "signed-data" else "encrypted")
    elif media_type in ("application/pkcs7-signature", "application/x-pkcs7-signature"):
        body.flags.add("signed")
    is_tnef = media_type in _TNEF_TYPES or (about.filename or "").lower() == "winmail.dat"
    if is_tnef and _unpack_tnef(data, body):
        return
    fallback = _FALLBACK_NAMES.get(media_type, "attachment.bin")
    body.attach(data, _safe_filename(about.filename, fallback), media_type, about)


_SMIME_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_TNEF_PART = _Part({}, "application/octet-stream", {}, "attachment", None)


def _unpack_tnef(data: bytes, body: _Body) -> bool:
    """An Outlook ``winmail.dat`` unpacked into its attachments (and its text, when the
    mail has none of its own); False if it is not TNEF or does not unpack."""
    import tnefparse  # only when a mail has one: most commands never need it

    try:
        tnef = tnefparse.TNEF(data, do_checksum=False)
        files = [(str(a.long_filename() or a.name), bytes(a.data)) for a in tnef.attachments]
        plain, html = tnef.body, tnef.htmlbody
    except Exception:  # a third-party decoder fed a sender's bytes: any failure keeps it whole
        log.info("a winmail.dat did not unpack: kept as it came", exc_info=True)
        return False
    if not files and not (plain or html):
        return False
    body.flags.add("tnef")
    if not body.plain and not body.html:
        if isinstance(plain, bytes):
            plain = decode_bytes(plain.rstrip(b"\0"), None)[0]
        if isinstance(html, bytes):
            html = decode_bytes(html.rstrip(b"\0"), None)[0]
        if isinstance(plain, str) and plain.strip("\0 \r\n"):
            body.plain.append(_body_text(plain.rstrip("\0")))
        elif isinstance(html, str) and html.strip("\0 \r\n"):
            body.html.append(_body_text(html.rstrip("\0")))
    for name, content in files:
        body.walked += 1
        if body.walked > body.limits.max_parts:
            body.flags.add("too-many-parts")
            break
        guessed = mimetypes.guess_type(name.replace("\0", ""))[0] or "application/octet-stream"
        safe = _safe_filename(name.replace("\0", ""), "attachment.bin")
        body.attach(content, safe, guessed.lower(), _TNEF_PART)
    return True


def _message_part(about: _Part, payload: Iterable[object], body: _Body, depth: int) -> None:
    """A message/* part: a forwarded mail (an ``.eml`` attachment, also read as a message:
    ``_forwarded``), a report."""
    inner = [p for p in payload if isinstance(p, Message)]
    try:
        data = b"".join(p.as_bytes(policy=_CRLF) for p in inner)
    except RecursionError:
        data = b""
        body.flags.add("too-deep")
    encoding = about.headers.get("content-transfer-encoding", "").strip().lower()
    if encoding in ("base64", "quoted-printable"):  # not allowed for message/*, but seen
        try:
            raw = data.strip()
            data = binascii.a2b_base64(raw) if encoding == "base64" else binascii.a2b_qp(raw)
        except binascii.Error:
            pass
    media_type, filename = about.media_type, about.filename
    if media_type in _MESSAGE_TYPES:
        if encoding in ("base64", "quoted-printable") or not inner:
            found = _Headers(_HEADER_PARSER.parsebytes(data))
        else:
            found = _Headers(inner[0])
        original_id = _message_id(found.first("message-id"))
        if original_id:
            body.original_ids.append(original_id)
        if not filename:
            subject = _one_line(decode_words(found.first("subject") or "")[0])[0]
            filename = f"{subject[: _MAX_NAME - 4]}.eml" if subject else None
    fallback = _FALLBACK_NAMES.get(media_type, "attachment.bin")
    body.attach(data, _safe_filename(filename, fallback), media_type, about)
    if media_type in _MESSAGE_TYPES and data:
        if depth + 1 >= body.limits.max_depth:
            body.flags.add("too-deep")
            return
        message = inner[0] if inner and encoding not in ("base64", "quoted-printable") else None
        _forwarded(message or _PARSER.parsebytes(data), found, body, depth + 1)


def _forwarded(message: Message, found: _Headers, body: _Body, depth: int) -> None:
    """Read an attached message as a message: who sent it, when, its subject and text;
    its attachments join the mail's own (the same limits, counted together)."""
    inner = _Body(body.limits, body.flags, attachments=body.attachments)
    inner.kept_bytes, inner.walked = body.kept_bytes, body.walked
    inner.forwarded = body.forwarded
    position = len(body.forwarded)
    _walk(message, inner, depth)
    body.kept_bytes, body.walked = inner.kept_bytes, inner.walked
    text, _html, _reply = _texts(inner)
    pair = _first_address(found, "from")
    sender = ""
    if pair is not None:
        name = _display_name(pair[0])[0]
        sender = f"{name} <{pair[1]}>" if name else pair[1]
    subject = _one_line(decode_words(found.first("subject") or "")[0])[0]
    date = _date(found.first("date"))
    body.forwarded.insert(position, Forwarded(sender, date, subject, text))


# -- the whole mail ------------------------------------------------------------------------

_HEADER_START = re.compile(rb"(?:From [^\r\n]*\r?\n)?[!-9;-~]+[ \t]*:")
_CONTAINER = re.compile(rb"\ncontent-type:[ \t]*(?:\r?\n[ \t]+)?(?:multipart|message)/")


def _bounded(raw: bytes, limit: int) -> tuple[bytes, bool]:
    """``raw`` cut before its ``limit + 1``-th multipart/message Content-Type, if it has one."""
    if raw.count(b"/") < limit:  # cheap: every container declaration has a slash
        return raw, False
    for count, match in enumerate(_CONTAINER.finditer(raw.lower()), start=1):
        if count > limit:
            return raw[: match.start() + 1], True
    return raw, False


def parse_mail(raw: bytes, *, limits: MailLimits = MailLimits()) -> ParsedMail:
    """Parse one raw mail (RFC 5322 bytes, any line ends); see the module docstring."""
    source = raw.lstrip()
    if not source or not _HEADER_START.match(source):
        raise MailParseError("not a mail: no header section")
    flags: set[str] = set()
    source, cut = _bounded(source, limits.max_parts)
    if cut:
        flags.add("too-many-parts")
    try:
        msg = _PARSER.parsebytes(source)
    except RecursionError:
        flags.add("too-deep")
        msg = _HEADER_PARSER.parsebytes(source)
        msg.set_payload("")
    headers = _Headers(msg)
    if not headers.fields:
        raise MailParseError("not a mail: no header fields")
    if any(isinstance(d, _HEADER_DEFECTS) for d in msg.defects):
        flags.add("malformed-headers")
    if any(headers.count(name) > 1 for name in _SINGLETONS):
        flags.add("malformed-headers")

    # Who: From, else Sender, else Return-Path.
    sender_pair = None
    for name in ("from", "sender", "return-path"):
        sender_pair = _first_address(headers, name)
        if sender_pair is not None:
            break
        flags.add("malformed-headers")  # From missing or unparseable
    sender_name, guessed, broke = _display_name(sender_pair[0] if sender_pair else "")
    flags.update(_name_flags(guessed, broke))
    sender = sender_pair[1] if sender_pair else ""
    reply_to_pair = _first_address(headers, "reply-to")
    reply_to_name = _display_name(reply_to_pair[0])[0] if reply_to_pair else ""
    list_post = _LIST_POST.search(headers.first("list-post") or "")
    listed = any(
        name in headers.fields
        for name in ("list-id", "list-post", "list-unsubscribe", "mailing-list", "x-mailing-list")
    )
    to, to_total = _addresses(headers.all("to"), limits.max_recipients)
    cc, cc_total = _addresses(headers.all("cc"), max(0, limits.max_recipients - len(to)))
    total = to_total + cc_total
    if total > limits.max_recipients:
        flags.add("too-many-recipients")

    subject, guessed = decode_words(headers.first("subject") or "")
    subject, broke = _one_line(subject)
    flags.update(_name_flags(guessed, broke))

    date = _date(headers.first("date"))
    if date is None:
        flags.add("malformed-headers")
    message_id = _message_id(headers.first("message-id"))
    if message_id is None:
        flags.add("no-message-id")
        if headers.first("message-id") is not None:
            flags.add("malformed-headers")
        message_id = f"<{hashlib.sha256(raw).hexdigest()}@accord.invalid>"
    in_reply_to = _message_ids(headers.all("in-reply-to"))
    references = _message_ids(headers.all("references"))

    # What: the MIME tree.
    body = _Body(limits, flags)
    _walk(msg, body)
    text, html, reply = _texts(body)
    if not text.strip():
        flags.add("no-body")

    media_type, type_params = _params(_part_headers(msg).get("content-type"))
    auto = _auto(headers, sender, subject, media_type, type_params)
    if auto is None:
        flags.update(_quiet(headers))
    bounced: tuple[str, ...] = ()
    if auto in ("bounce", "mailer-daemon"):
        inline = _HEADER_ID.findall(text)
        bounced = tuple(dict.fromkeys(body.original_ids or inline)) or (references + in_reply_to)
        bounced = tuple(dict.fromkeys(bounced))
    if headers.guessed:  # raw 8-bit in a header that was read, and not UTF-8
        flags.add("charset-fallback")
    return ParsedMail(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        sender=sender,
        sender_name=sender_name,
        reply_to=reply_to_pair[1] if reply_to_pair else "",
        to=tuple(addr for _, addr in to),
        cc=tuple(addr for _, addr in cc),
        recipients_total=total,
        subject=subject,
        date=date,
        text=text,
        new_text=reply.new,
        quoted=reply.quoted,
        signature=reply.signature,
        html=html,
        attachments=tuple(body.attachments),
        auto=auto,
        bounced_ids=bounced,
        flags=tuple(sorted(flags)),
        size=len(raw),
        reply_to_name=reply_to_name,
        list_post=list_post.group(1).lower() if list_post else "",
        listed=listed,
        forwarded=tuple(body.forwarded),
    )


def _name_flags(guessed: bool, broke: bool) -> set[str]:
    return {flag for flag, on in (("charset-fallback", guessed), ("header-injection", broke)) if on}


def _texts(body: _Body) -> tuple[str, str | None, Reply]:
    """The plain text, the sanitised HTML and the reply split, from what the walk found."""
    plain = "\n".join(body.plain).strip("\n")
    raw_html = "\n".join(body.html)
    if len(raw_html) > MAX_HTML:  # what the HTML functions would use anyway
        raw_html = raw_html[:MAX_HTML]
        body.flags.add("body-truncated")
    html = _nfc(sanitize_html(raw_html)) if body.html else None
    if plain.strip() or not body.html:
        return plain, html, split_reply(plain)
    text = _nfc(html_to_text(raw_html))
    before, after = split_html(raw_html)
    if not after:
        return text, html, split_reply(text)
    reply = split_reply(_nfc(html_to_text(before)))
    quoted = "\n\n".join(part for part in (reply.quoted, _nfc(html_to_text(after))) if part)
    return text, html, Reply(reply.new, quoted, reply.signature)


__all__ = [
    "Attachment",
    "MailLimits",
    "MailParseError",
    "ParsedMail",
    "decode_bytes",
    "decode_words",
    "parse_mail",
]
