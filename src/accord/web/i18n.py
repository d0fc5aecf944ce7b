"""What the customer reads, in the customer's language: gettext catalogues through Babel.

Every text of the portal is an English msgid marked in its template (``{{ _("…") }}``,
Jinja's ``jinja2.ext.i18n``, new-style gettext) or in Python (``_("…")`` in
``accord.web.portal`` and ``accord.web.plain``). ``messages.pot`` in ``locale/`` is
extracted from them by Babel with the mapping in ``pyproject.toml`` (``[tool.babel]``,
``make messages``); each language is ``locale/<lang>/LC_MESSAGES/messages.po``.

English is the source language (the msgids): it needs no catalogue. The ``.po`` files are
the only catalogues in the repository; each is compiled to a gettext catalogue in memory
the first time a page needs it (``babel.messages.mofile.write_mo``), so there is no
binary to commit, rebuild or forget. A ``.po`` entry that is missing or fuzzy shows the
English text; ``tests/web/test_portal_phone.py`` fails when one is.

The language of a page: ``?lang=`` (kept in the ``accord_lang`` cookie), else the
cookie, else the best match of the browser's ``Accept-Language``, else English.
"""

from __future__ import annotations

from functools import cache
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import Environment

from accord.web.render import PAGES

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "messages"
SOURCE = "en"
COOKIE = "accord_lang"
COOKIE_AGE = 365 * 24 * 3600
FORMAT_LOCALES = {"en": "en_GB"}
"""The locale whose conventions (dates, money) a language is formatted with."""


@cache
def languages() -> tuple[str, ...]:
    """English first, then every language with a catalogue in ``locale/``."""
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return (SOURCE, *(lang for lang in found if lang != SOURCE))


def language_name(lang: str) -> str:
    """The language's own name for itself ("Deutsch"), for the language switch."""
    return str(Locale.parse(lang).display_name or lang).capitalize()


def format_locale(lang: str) -> str:
    return FORMAT_LOCALES.get(lang, lang)


@cache
def translations(lang: str) -> NullTranslations:
    """The compiled catalogue of ``lang`` (English: the msgids themselves)."""
    if lang == SOURCE or lang not in languages():
        return NullTranslations()
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po.open("rb") as source:
        catalog = read_po(source, locale=lang, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def accepted(header: str | None) -> list[str]:
    """The primary language tags of an ``Accept-Language`` header, best first."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((header or "").split(",")[:30]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary and primary != "*" and weight > 0:
            ranked.append((-weight, i, primary))
    return [tag for _, _, tag in sorted(ranked)]


def choose(query: str | None, cookie: str | None, header: str | None) -> str:
    """The page's language: the ``?lang=`` switch, the cookie, the browser's, English."""
    for asked in (query, cookie):
        if asked and asked.lower() in languages():
            return asked.lower()
    for tag in accepted(header):
        if tag in languages():
            return tag
    return SOURCE


@cache
def environment(lang: str) -> Environment:
    """The pages' templates with ``lang``'s catalogue installed (one environment per
    language, so that concurrent requests in different languages never share one)."""
    env = Environment(
        loader=PAGES.loader,
        autoescape=PAGES.autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.globals.update(PAGES.globals)
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env
