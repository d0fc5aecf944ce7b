"""Where a customer's words end: a reply split into new text, the quoted mail and the signature.

An agent reading a case wants what the customer *added*, not the fifth copy of the thread
below it, so every inbound mail is split three ways. The rules are conservative on purpose:
losing a customer's sentence is worse than showing a few quoted lines, so text is only moved
out of ``new`` on a marker that clients really write:

* ``>`` quoting — a quoted block at the end (top-posting) or at the very start (bottom-posting),
  with the attribution line above it ("On … wrote:", "Am … schrieb …:", "Le … a écrit :" and
  other languages, also wrapped over up to three lines). Quoted blocks *between* the customer's
  lines are an inline reply and stay in ``new`` as the context of the answers.
* Outlook's unquoted history: "-----Original Message-----" (and its translations), forward
  separators, and a "From: / Sent: / To: / Subject:" header block (optionally under a line of
  underscores). Everything from there on is history.
* A signature: the last "-- " delimiter, or a "Sent from my iPhone"-style line at the end.

``split_html`` finds the same boundary in HTML (Gmail's ``gmail_quote``, Apple Mail's
``<blockquote type="cite">``, Outlook's ``divRplyFwdMsg``, Thunderbird's ``moz-cite-prefix``…),
for mails that have no plain-text part. ``unflow`` undoes RFC 3676 ``format=flowed`` so a
Thunderbird paragraph is one line again before any of this runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ATTRIBUTION = re.compile(
    r"\s*(?:(?:On|Am|Le|El|Il|Op|Em|Den|Dne|W\s+dniu|Pada)\b|\d{4}[-/.年]).*"
    r"(?:\b(?:wrote|writes|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef|escreveu|skrev|"
    r"napsal|napisał|menulis|kirjoitti|yazd\u0131|написал)\b|\S+>).*[:\uff1a]\s*",
    re.S | re.I,
)
# Outlook and friends put the old mail, unquoted, under one of these lines.
_SEPARATOR = re.compile(
    r"\s*-{2,}\s*(?:original\s+message|forwarded\s+message|ursprüngliche\s+nachricht|"
    r"weitergeleitete\s+nachricht|message\s+d'origine|message\s+original|message\s+transféré|"
    r"mensaje\s+original|mensaje\s+reenviado|messaggio\s+originale|messaggio\s+inoltrato|"
    r"oorspronkelijk\s+bericht|doorgestuurd\s+bericht|mensagem\s+original|"
    r"mensagem\s+encaminhada|originalmeddelande|vidarebefordrat\s+meddelande|"
    r"oprindelig\s+meddelelse|wiadomość\s+oryginalna|исходное\s+сообщение|"
    r"пересылаемое\s+сообщение)\s*-{2,}\s*"
    r"|\s*(?:begin\s+forwarded\s+message|anfang\s+der\s+weitergeleiteten\s+nachricht|"
    r"début\s+du\s+message\s+réexpédié|inicio\s+del\s+mensaje\s+reenviado)\s*:\s*",
    re.I,
)
_FROM_LABEL = re.compile(
    r"\s*\*?(?:From|Von|De|Da|Van|Från|Fra|Od|От|差出人|发件人|寄件者|보낸\s*사람)\s*\*?\s*[:\uff1a]",
    re.I,
)
_SENT_LABEL = re.compile(
    r"\s*\*?(?:Sent|Date|Gesendet|Datum|Envoyé|Date\s+d'envoi|Enviado|Fecha|Inviato|Data|"
    r"Verzonden|Skickat|Sendt|Wysłano|Отправлено|送信日時|发送时间|傳送時間|보낸\s*날짜)"
    r"\s*\*?\s*[:\uff1a]",
    re.I,
)
_TO_LABEL = re.compile(
    r"\s*\*?(?:To|An|À|A|Para|Aan|Till|Til|Do|Кому|宛先|收件人|받는\s*사람|Subject|Betreff|"
    r"Objet|Asunto|Oggetto|Onderwerp|Ämne|Emne|Temat|Тема|件名|主题|主旨|제목)\s*\*?\s*[:\uff1a]",
    re.I,
)
_UNDERSCORES = re.compile(r"\s*_{10,}\s*")
_DELIMITER = re.compile(r"--[ \t]*")
_MOBILE = re.compile(
    r"\s*(?:Sent\s+from\s+my\s+[\w\- ]{1,40}"
    r"|Sent\s+(?:from|with|via)\s+(?:Mail|Outlook|Yahoo\s+Mail|AOL\s+Mail|Samsung\s+Mail|Gmail|"
    r"Proton\s*Mail|BlueMail|Spark|BlackBerry|Superhuman|Tutanota)\b.{0,40}"
    r"|Get\s+Outlook\s+for\s+(?:iOS|Android)\b.{0,60}"
    r"|(?:Von\s+meinem|Gesendet\s+von(?:\s+meinem)?|Gesendet\s+mit\s+der|Envoyé\s+de\s+mon|"
    r"Enviado\s+desde\s+mi|Enviado\s+do\s+meu|Inviato\s+da(?:l\s+mio)?|Verzonden\s+met\s+mijn|"
    r"Verstuurd\s+vanaf\s+mijn|Skickat\s+från\s+min|Sendt\s+fra\s+min)\s+[\w.\- ]{1,40}?"
    r"(?:\s+gesendet)?)",
    re.I,
)
# Quote markers in HTML, looked for inside each <div>, <blockquote> and <hr> tag. Tags are
# found with "[^<>]*", which stops at the next "<", so hostile HTML cannot make the search
# quadratic; the repeats inside a tag are bounded for the same reason.
_HTML_TAG = re.compile(r"<(?:div|blockquote|hr)\b[^<>]*>", re.I)
_HTML_QUOTE = re.compile(
    r"""\bclass\s*=\s*["']?[^"'>]{0,200}?\b"""
    r"""(?:gmail_quote|yahoo_quoted|moz-cite-prefix|protonmail_quote)\b"""
    r"""|\btype\s*=\s*["']?cite\b"""
    r"""|\bid\s*=\s*["']?"""
    r"""(?:divRplyFwdMsg|appendonsend|mail-editor-reference-message-container|stopSpelling)\b""",
    re.I,
)
_LOOKAHEAD = 6  # lines searched below "From:" for the rest of an Outlook header block
_SIGNATURE_LINES = 15  # a "--" delimiter further up than this is a divider, not a signature


@dataclass(frozen=True)
class Reply:
    """One message body split three ways; each part has no leading or trailing blank lines."""

    new: str
    quoted: str
    signature: str


def split_reply(text: str) -> Reply:
    """Split a plain-text body (``\\n`` line ends) into new text, quoted history and signature."""
    lines = text.split("\n")
    history = _history_start(lines)
    start = _leading_quote_end(lines, history)
    end = _trailing_quote_start(lines, start, history)
    cut = _signature_start(lines, start, end)
    if cut is None:
        new, above, signature = lines[start:end], [], []
    else:  # a quote right above the signature is the end of a bottom-posted reply
        skip = 1 if _DELIMITER.fullmatch(lines[cut]) else 0
        middle = _trailing_quote_start(lines, start, cut)
        new, above, signature = lines[start:middle], lines[middle:cut], lines[cut + skip : end]
    quoted = "\n\n".join(
        b for b in (_block(lines[:start]), _block(above), _block(lines[end:])) if b
    )
    return Reply(_block(new), quoted, _block(signature))


def split_html(html: str) -> tuple[str, str]:
    """The HTML before the first quoted-history marker, and from it on (``""`` when none)."""
    for tag in _HTML_TAG.finditer(html):
        if _HTML_QUOTE.search(tag.group(0)):
            return html[: tag.start()], html[tag.start() :]
    return html, ""


def unflow(text: str, *, delsp: bool = False) -> str:
    """Undo RFC 3676 ``format=flowed``: join soft-broken lines, remove space-stuffing."""
    out: list[str] = []
    paragraph: list[str] = []
    depth = 0
    for line in text.split("\n"):
        content = line.lstrip(">")
        level = len(line) - len(content)
        if content.startswith(" "):
            content = content[1:]
        if paragraph and level != depth:  # a quote-depth change ends a flowed paragraph
            out.append(_quote(depth, "".join(paragraph)))
            paragraph = []
        depth = level
        soft = content.endswith(" ") and content != "-- "
        paragraph.append(content[:-1] if soft and delsp else content)
        if not soft:
            out.append(_quote(depth, "".join(paragraph)))
            paragraph = []
    if paragraph:
        out.append(_quote(depth, "".join(paragraph)))
    return "\n".join(out)


# -- the boundaries ------------------------------------------------------------------------


def _quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _history_start(lines: list[str]) -> int:
    """The first line of unquoted history (Outlook separators and header blocks, forwards)."""
    for i, line in enumerate(lines):
        if not line or _quoted(line):
            continue
        if _SEPARATOR.fullmatch(line):
            return i
        if _FROM_LABEL.match(line) and _header_block(lines, i):
            above = i - 1
            while above >= 0 and not lines[above].strip():
                above -= 1
            return above if above >= 0 and _UNDERSCORES.fullmatch(lines[above]) else i
    return len(lines)


def _header_block(lines: list[str], i: int) -> bool:
    below = lines[i + 1 : i + 1 + _LOOKAHEAD]
    return any(_SENT_LABEL.match(line) for line in below) and any(
        _TO_LABEL.match(line) for line in below
    )


def _attribution_above(lines: list[str], end: int, floor: int) -> int | None:
    """Where an attribution ("On … wrote:") ending just above line ``end`` begins, if any."""
    last = end - 1
    while last >= floor and not lines[last].strip():
        last -= 1
    if last < floor or not lines[last].rstrip().endswith((":", "\uff1a")):
        return None
    for first in range(last, max(floor, last - 2) - 1, -1):
        candidate = " ".join(line.strip() for line in lines[first : last + 1])
        if len(candidate) <= 400 and _ATTRIBUTION.fullmatch(candidate):
            return first
    return None


def _trailing_quote_start(lines: list[str], floor: int, end: int) -> int:
    """The start of the ``>`` block (with its attribution) that ends the reply, or ``end``."""
    i = end
    while i > floor and (not lines[i - 1].strip() or _quoted(lines[i - 1])):
        i -= 1
    quoted = any(_quoted(line) for line in lines[i:end])
    attribution = _attribution_above(lines, i, floor)
    if attribution is not None:
        return attribution
    if not quoted:
        return end
    while i < end and not lines[i].strip():
        i += 1
    return i


def _leading_quote_end(lines: list[str], end: int) -> int:
    """After a bottom-posted reply's one leading ``>`` block (with attribution), else 0.

    Only when that block is the *only* quoted block before ``end``: several blocks between
    the customer's lines are an inline reply, and the quotes are the context of the answers.
    """
    i = 0
    while i < end and not lines[i].strip():
        i += 1
    first = i
    for j in range(i, min(end, i + 3)):
        if lines[j].strip() and _quoted(lines[j]):
            break
        if lines[j].strip() and _attribution_above(lines, j + 1, first) == first:
            i = j + 1
            break
    while i < end and not lines[i].strip():
        i += 1
    if i >= end or not _quoted(lines[i]):
        return 0
    while i < end and (not lines[i].strip() or _quoted(lines[i])):
        i += 1
    rest = lines[i:end]
    if not any(line.strip() for line in rest) or any(_quoted(line) for line in rest):
        return 0  # all quote (the trailing rule handles it) or an inline reply
    return i


def _signature_start(lines: list[str], start: int, end: int) -> int | None:
    """The last "-- " delimiter, or a mobile sign-off among the last two lines with text."""
    cut = None
    for i in range(end - 1, max(start, end - _SIGNATURE_LINES) - 1, -1):
        if _DELIMITER.fullmatch(lines[i]):
            cut = i
            break
    tail = [i for i in range(start, end) if lines[i].strip()][-2:]
    for i in tail:
        if _MOBILE.fullmatch(lines[i].rstrip(" .")) and (cut is None or i < cut):
            cut = i
            break
    return cut


def _quote(depth: int, content: str) -> str:
    if not depth:
        return content
    return ">" * depth + (" " + content if content else "")


def _block(lines: list[str]) -> str:
    first, last = 0, len(lines)
    while first < last and not lines[first].strip():
        first += 1
    while last > first and not lines[last - 1].strip():
        last -= 1
    return "\n".join(line.rstrip() for line in lines[first:last])


__all__ = ["Reply", "split_html", "split_reply", "unflow"]
