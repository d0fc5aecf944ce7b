"""Direct-line tokens: one generator for every case reference (``accord.channels.refs``)."""

from __future__ import annotations

from collections import Counter

from accord.channels.refs import TOKEN, TOKEN_ALPHABET, new_token


def test_tokens_are_twelve_letters_of_the_alphabet_and_do_not_repeat() -> None:
    made = [new_token() for _ in range(2_000)]
    assert all(TOKEN.fullmatch(t) for t in made)
    assert len(set(made)) == len(made)
    letters = Counter("".join(made))
    assert set(letters) == set(TOKEN_ALPHABET)  # every letter is drawn, none beside them
