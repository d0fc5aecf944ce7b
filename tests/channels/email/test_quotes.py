"""Splitting a reply into new text, quoted history and signature, as the clients write them.

The rule under test throughout: a customer's own words are never moved out of ``new`` on a
guess — only on markers that mail clients really write.
"""

from __future__ import annotations

import pytest

from accord.channels.email.quotes import Reply, split_html, split_reply, unflow


def split(*lines: str) -> Reply:
    return split_reply("\n".join(lines))


# -- quoted history ------------------------------------------------------------------------


def test_gmail_top_post_with_a_wrapped_attribution() -> None:
    reply = split(
        "Thanks, that fixed it.",
        "",
        "On Mon, Nov 23, 2026 at 10:00 AM Northwind Support <",
        "support@northwind.example> wrote:",
        "",
        "> Hello,",
        "> please restart the router.",
    )
    assert reply.new == "Thanks, that fixed it."
    assert reply.quoted.startswith("On Mon, Nov 23") and reply.quoted.endswith("the router.")
    assert reply.signature == ""


@pytest.mark.parametrize(
    "attribution",
    [
        "On 23 Nov 2026, at 10:00, Northwind Support <support@northwind.example> wrote:",
        "On 23/11/2026 10:00, Northwind Support wrote:",
        "Am 23.11.2026 um 10:00 schrieb Northwind Support:",
        "Am Mo., 23. Nov. 2026 um 10:00 Uhr schrieb Northwind <support@northwind.example>:",
        "Le lun. 23 nov. 2026 à 10:00, Northwind Support <support@northwind.example> a écrit :",
        "Le 23/11/2026 à 10:00, Northwind Support a écrit\u00a0:",
        "El lun, 23 nov 2026 a las 10:00, Northwind (<support@northwind.example>) escribió:",
        "Op ma 23 nov 2026 om 10:00 schreef Northwind Support <support@northwind.example>:",
        "Il giorno lun 23 nov 2026 alle ore 10:00 Northwind <s@n.example> ha scritto:",
        "Den mån 23 nov. 2026 kl 10:00 skrev Northwind Support <support@northwind.example>:",
        "W dniu pon., 23.11.2026 o 10:00 Northwind <support@northwind.example> napisał(a):",
        "2026年11月23日(月) 10:00 Northwind Support <support@northwind.example>:",
    ],
)
def test_attributions_in_many_languages(attribution: str) -> None:
    reply = split("Danke / merci / tack.", "", attribution, "> Old text.", "> More.")
    assert reply.new == "Danke / merci / tack."
    assert reply.quoted == f"{attribution}\n> Old text.\n> More."


def test_apple_mail_quotes_its_attribution_too() -> None:
    reply = split(
        "Perfect, thanks!",
        "",
        "Sent from my iPhone",
        "",
        "> On 23 Nov 2026, at 10:00, Northwind Support <support@northwind.example> wrote:",
        ">",
        "> Hello",
    )
    assert reply == Reply("Perfect, thanks!", reply.quoted, "Sent from my iPhone")
    assert reply.quoted.startswith("> On 23 Nov 2026")


OUTLOOK_HEADERS = [
    [
        "From: Northwind Billing <billing@northwind.example>",
        "Sent: Monday, November 23, 2026 10:00 AM",
        "To: Mark Ellison <m.ellison@contoso.com>",
        "Subject: RE: Invoice",
    ],
    [
        "Von: Northwind <kundenservice@northwind.example>",
        "Gesendet: Montag, 23. November 2026 10:00",
        "An: Klaus Becker",
        "Betreff: AW: Vertrag",
    ],
    [
        "De : Northwind <support@northwind.example>",
        "Envoyé : lundi 23 novembre 2026 10:00",
        "À : Élodie Moreau",
        "Objet : RE: Facture",
    ],
    [
        "*From:* Northwind <support@northwind.example>",
        "*Date:* Monday, 23 November 2026",
        "*Subject:* Re: x",
        "*To:* me@example.com",
    ],
]


@pytest.mark.parametrize("header", OUTLOOK_HEADERS)
def test_outlook_header_blocks_start_the_history(header: list[str]) -> None:
    reply = split("See below.", "", "Mark", "", "_" * 32, *header, "", "Old mail body")
    assert reply.new == "See below.\n\nMark"
    assert reply.quoted.startswith("_" * 32) and reply.quoted.endswith("Old mail body")


@pytest.mark.parametrize(
    "separator",
    [
        "-----Original Message-----",
        "-----Ursprüngliche Nachricht-----",
        "-----Message d'origine-----",
        "-------- Original message --------",
        "---------- Forwarded message ---------",
        "-------- Weitergeleitete Nachricht --------",
        "Begin forwarded message:",
    ],
)
def test_separators_start_the_history(separator: str) -> None:
    reply = split("Please look at this.", "", separator, "From: someone", "Old text")
    assert reply.new == "Please look at this."
    assert reply.quoted == f"{separator}\nFrom: someone\nOld text"


def test_bottom_posting_moves_the_leading_quote() -> None:
    reply = split(
        "On 23/11/2026 10:00, Northwind Support wrote:",
        "> Which model do you have?",
        "",
        "The NWB-400.",
        "",
        "-- ",
        "Lars",
    )
    assert reply == Reply(
        "The NWB-400.",
        "On 23/11/2026 10:00, Northwind Support wrote:\n> Which model do you have?",
        "Lars",
    )


def test_an_inline_reply_keeps_the_questions_it_answers() -> None:
    reply = split(
        "On 23/11/2026 10:00, Northwind Support wrote:",
        "> Which model do you have?",
        "",
        "The NWB-400.",
        "",
        "> Did you restart it?",
        "",
        "Yes, twice.",
        "",
        "> Kind regards,",
        "> Anna",
        "",
        "-- ",
        "Lars",
    )
    assert reply.new.startswith("On 23/11/2026")
    assert "> Did you restart it?\n\nYes, twice." in reply.new
    assert reply.quoted == "> Kind regards,\n> Anna"
    assert reply.signature == "Lars"


def test_all_quote_means_nothing_new() -> None:
    assert split("> only", "> quoted").new == ""
    assert split("").new == ""


# -- signatures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Sent from my iPhone",
        "Sent from my Galaxy",
        "Sent from my Samsung Galaxy smartphone.",
        "Sent from Outlook for Android",
        "Sent from Mail for Windows",
        "Sent with Proton Mail secure email.",
        "Get Outlook for iOS<https://aka.ms/o0ukef>",
        "Von meinem iPhone gesendet",
        "Envoyé de mon iPad",
        "Enviado desde mi iPhone",
        "Inviato da iPhone",
        "Verstuurd vanaf mijn iPhone",
    ],
)
def test_mobile_sign_offs_are_signatures(line: str) -> None:
    assert split("Yes, please.", "", line) == Reply("Yes, please.", "", line)


def test_the_last_delimiter_starts_the_signature() -> None:
    reply = split("Hi", "", "-- ", "Ana Ruiz", "Example Ltd")
    assert reply == Reply("Hi", "", "Ana Ruiz\nExample Ltd")
    assert split("Hi", "--", "Ana").signature == "Ana"  # the space is often trimmed


@pytest.mark.parametrize(
    "text",
    [
        "Sent via the portal yesterday, but no reply yet.",
        "Sent from my account on 3 November, still nothing back from you, please help me",
        "On Monday I called you.\nNobody answered.",
        "From: my neighbour's flat the signal is fine.\nOnly here it drops.",
        "The first list:\n--\n" + "\n".join(f"item {i}" for i in range(20)),
        "Our reply to your question:\n\nWe have 3 routers.",
    ],
)
def test_customers_own_words_stay_new(text: str) -> None:
    assert split_reply(text) == Reply(text, "", "")


# -- HTML ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "marker",
    [
        '<div class="gmail_quote gmail_quote_container">',
        '<blockquote type="cite">',
        '<div id="divRplyFwdMsg" dir="ltr">',
        '<div id="appendonsend"></div>',
        '<div class="moz-cite-prefix">',
        '<div class="yahoo_quoted" style="display:block">',
    ],
)
def test_split_html_at_the_first_quote_marker(marker: str) -> None:
    before, after = split_html(f"<div>New text</div>{marker}<div>old</div>")
    assert before == "<div>New text</div>"
    assert after == f"{marker}<div>old</div>"


def test_split_html_without_a_marker() -> None:
    assert split_html("<p>Hello <blockquote>a quote I wrote</blockquote></p>") == (
        "<p>Hello <blockquote>a quote I wrote</blockquote></p>",
        "",
    )


# -- format=flowed (RFC 3676) --------------------------------------------------------------


def test_unflow_joins_soft_breaks_and_unstuffs() -> None:
    text = "This is a \nflowed paragraph.\n From the stuffed line.\nFixed line.\n"
    assert unflow(text) == "This is a flowed paragraph.\nFrom the stuffed line.\nFixed line.\n"


def test_unflow_delsp_removes_the_soft_space() -> None:
    assert unflow("日本語の\n文章です。", delsp=True) == "日本語の\n文章です。"
    assert unflow("日本語の \n文章です。", delsp=True) == "日本語の文章です。"


def test_unflow_keeps_quote_depth_and_signature() -> None:
    text = "> quoted \n> more\n>> deeper \n>> still\n> back\n-- \nsig"
    assert unflow(text) == "> quoted more\n>> deeper still\n> back\n-- \nsig"


def test_unflow_ends_a_paragraph_when_the_quote_depth_changes() -> None:
    assert unflow("> soft \nnot quoted") == "> soft \nnot quoted"
