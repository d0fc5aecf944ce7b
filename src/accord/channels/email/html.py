"""Customers' HTML mail: sanitised for display, and turned into plain text when that is all.

``sanitize_html`` keeps what a reader needs (text, structure, tables, links, images) and
nothing that acts: ammonia (through nh3) parses like a browser and keeps an allow-list of
tags and attributes, so ``<script>``, ``<style>``, event handlers (``onerror=``), forms,
iframes and ``javascript:``/``data:`` URLs are gone. Links get ``rel="noopener noreferrer
nofollow"``; ``cid:`` stays allowed for images so the UI can point inline images (by
Content-ID) at their attachment.

``html_to_text`` is for mails with no ``text/plain`` part: paragraphs and line breaks stay
lines, list items get markers, link targets follow their text as ``<url>`` (web, mail and
phone links only), script/style/title are dropped, and ``<blockquote>`` lines get ``> ``
prefixes so the quote splitter sees the same shape as in plain-text mail. Signature blocks
that clients mark (Gmail's ``gmail_signature``, Thunderbird's ``moz-signature``) get a
``-- `` line above them for the same reason. The HTML goes through ammonia first (keeping
class and id): ``html.parser`` is quadratic on some broken markup (a 200 KB run of ``</``
takes seconds), ammonia's output is well-formed and linear to walk.

Ammonia's HTML5 parser is itself superlinear on hostile input: nesting (20,000 unclosed
``<div>`` take seconds) and long runs of character references or stray ``&``/``<`` (a
400 KB run of ``&`` takes seconds too). So only the first ``MAX_HTML`` characters of a mail's
HTML are used — Gmail clips at about 100 KB for the same reason, and the newest part of
a thread is at the top — and HTML nested deeper than ``MAX_NESTING`` open elements is never
given to ammonia at all: its tags are stripped, and what is shown is that text, escaped.
"""

from __future__ import annotations

import html as htmllib
import re
from html.parser import HTMLParser

import nh3

_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})
_CLEAN_CONTENT = frozenset({"script", "style", "title", "template", "noscript", "textarea"})
# Both built once: the allow-lists are converted to Rust a single time.
_CLEANER = nh3.Cleaner(
    tags=set(nh3.ALLOWED_TAGS - _CLEAN_CONTENT),
    clean_content_tags=set(_CLEAN_CONTENT),
    url_schemes=set(_URL_SCHEMES),
    link_rel="noopener noreferrer nofollow",
)
_TEXT_CLEANER = nh3.Cleaner(
    tags=set(nh3.ALLOWED_TAGS - _CLEAN_CONTENT),
    clean_content_tags=set(_CLEAN_CONTENT),
    attributes={"*": {"class", "id"}, "a": {"href"}, "blockquote": {"type"}},
    url_schemes=set(_URL_SCHEMES),
    link_rel=None,
)

_SKIP = frozenset({"script", "style", "title", "template"})
_BREAK = frozenset(
    {
        "address",
        "article",
        "aside",
        "center",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "header",
        "main",
        "nav",
        "section",
        "summary",
        "tbody",
        "tfoot",
        "thead",
        "tr",
    }
)
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "pre", "hr"}
)
_TEXT_SCHEMES = ("http://", "https://", "mailto:", "tel:")
_SIGNATURE = re.compile(r"\b(?:gmail_signature|moz-signature)\b|^signature$", re.I)
_SPACE = re.compile(r"[ \t\r\n\f\v\xa0]+")
_CRUDE_SKIP = re.compile(r"<(script|style|title)\b[^<>]*>[^<]*</\1\s*>", re.I)  # linear
_CRUDE_BREAK = re.compile(r"<(?:br|/p|/div|/li|/tr|/h[1-6])\b[^<>]*>", re.I)
_TAG = re.compile(r"<[^<>]*>?")


MAX_HTML = 131_072  # characters of a mail's HTML that are used (see the module docstring)
MAX_NESTING = 500  # open elements; real mail, quoted threads included, stays far below
_TAG_SCAN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^<>]*?(/?)>")
# Elements that never stay open: void ones, and those the next sibling closes implicitly.
_NOT_NESTING = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "option",
    ]
)


def too_deep(html: str, limit: int = MAX_NESTING) -> bool:
    """Whether more than ``limit`` elements are open at some point (counted, not parsed)."""
    if html.count("<") <= limit:
        return False
    depth = 0
    for match in _TAG_SCAN.finditer(html):
        closing, name, self_closing = match.groups()
        if self_closing or name.lower() in _NOT_NESTING:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > limit:
                return True
    return False


def sanitize_html(html: str) -> str:
    """HTML safe to show in a page: allow-listed tags and attributes, safe URL schemes."""
    html = html[:MAX_HTML]
    if too_deep(html):
        return "<p>" + htmllib.escape(_crude_text(html)).replace("\n", "<br>") + "</p>"
    return _CLEANER.clean(html)


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML mail (see the module docstring for what is kept)."""
    html = html[:MAX_HTML]
    if too_deep(html):
        return _crude_text(html)
    html = _TEXT_CLEANER.clean(html)
    parser = _TextParser()
    try:
        parser.feed(html)
        parser.close()
    except AssertionError:  # html.parser refusing ammonia's output would be a surprise
        return _crude_text(html)
    return parser.text()


def _crude_text(html: str) -> str:
    """Tags stripped, line breaks kept: for HTML too deep or too broken to parse (linear)."""
    text = _CRUDE_BREAK.sub("\n", _CRUDE_SKIP.sub(" ", html))
    lines = (
        _SPACE.sub(" ", htmllib.unescape(_TAG.sub(" ", line))).strip() for line in text.split("\n")
    )
    return _tidy(list(lines))


def _tidy(lines: list[str]) -> str:
    """At most one blank line in a row (a lone ``>`` counts as blank), none at either end."""
    out: list[str] = []
    for line in lines:
        if line.strip("> ") or (out and out[-1].strip("> ")):
            out.append(line)
    while out and not out[-1].strip("> "):
        out.pop()
    return "\n".join(out)


class _TextParser(HTMLParser):
    """Collects lines; each finished line carries the ``>`` prefix of its blockquote depth."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._lines: list[str] = []
        self._line: list[str] = []
        self._line_depth = 0
        self._depth = 0  # blockquote nesting
        self._skip = 0
        self._pre = 0
        self._lists: list[list[int]] = []  # one [counter] per open list; -1 for <ul>
        self._links: list[tuple[str | None, list[str]]] = []
        self._marker = ""  # a list item's marker, written with its first text
        self._line_p = False  # inside Outlook's <p class=MsoNormal>: a line, not a paragraph

    # -- building lines ------------------------------------------------------------------

    def _write(self, text: str) -> None:
        if not self._line:
            text = text.lstrip(" ")
            if not text:
                return
            self._line_depth = self._depth
            if self._marker:
                self._line.append(self._marker)
                self._marker = ""
        self._line.append(text)
        for _, parts in self._links:
            parts.append(text)

    def _end_line(self, *, force: bool = False) -> None:
        self._marker = ""
        if self._line:
            self._push("".join(self._line).rstrip(), self._line_depth)
            self._line = []
        elif force:
            self._push("", self._depth)

    def _blank(self) -> None:
        self._end_line()
        if self._lines and self._lines[-1].strip(">"):
            self._push("", self._depth)

    def _push(self, content: str, depth: int) -> None:
        prefix = "> " * depth
        self._lines.append(prefix + content if content else prefix.rstrip())

    def text(self) -> str:
        self._end_line()
        return _tidy(self._lines)

    # -- the parser's callbacks ----------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
            return
        if self._skip:
            return
        if tag == "br":
            self._end_line(force=True)
        elif tag == "p":
            # Outlook writes every line as <p class=MsoNormal> with no margin.
            self._line_p = "msonormal" in (dict(attrs).get("class") or "").lower()
            (self._end_line if self._line_p else self._blank)()
        elif tag in _PARAGRAPH:
            self._blank()
            if tag == "blockquote":
                self._depth += 1
            elif tag == "pre":
                self._pre += 1
            elif tag in ("ul", "ol"):
                self._lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            self._end_line()
            counter = self._lists[-1] if self._lists else [-1]
            if counter[0] >= 0:
                counter[0] += 1
            marker = f"{counter[0]}. " if counter[0] >= 0 else "- "
            self._marker = "  " * max(0, len(self._lists) - 1) + marker
        elif tag in _BREAK:
            self._end_line()
            found = dict(attrs)
            if tag == "div" and _SIGNATURE.search(
                f"{found.get('class') or ''} {found.get('id') or ''}"
            ):
                self._push("-- ", self._depth)
        elif tag in ("td", "th"):
            if self._line:
                self._line.append("  ")
        elif tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            self._links.append((href if href.lower().startswith(_TEXT_SCHEMES) else None, []))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
            return
        if self._skip:
            return
        if tag == "p":
            (self._end_line if self._line_p else self._blank)()
            self._line_p = False
        elif tag in _PARAGRAPH:
            self._blank()
            if tag == "blockquote":
                self._depth = max(0, self._depth - 1)
            elif tag == "pre":
                self._pre = max(0, self._pre - 1)
            elif tag in ("ul", "ol") and self._lists:
                self._lists.pop()
        elif tag in _BREAK or tag == "li":
            self._end_line()
        elif tag == "a" and self._links:
            href, parts = self._links.pop()
            shown = "".join(parts).strip()
            target = href[7:] if href and href.lower().startswith("mailto:") else href
            if href and target and target not in shown:
                self._write(f" <{href}>" if shown else f"<{href}>")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            first, *rest = data.replace("\r\n", "\n").split("\n")
            self._write(first)
            for line in rest:
                self._end_line(force=True)
                self._write(line)
            return
        self._write(_SPACE.sub(" ", data))


__all__ = ["MAX_HTML", "MAX_NESTING", "html_to_text", "sanitize_html", "too_deep"]
