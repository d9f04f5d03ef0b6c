"""PII redaction: what is masked, what is left alone, and what to silence in the recording."""

import pytest

from coaching import Redactor, SegmentInput, redact
from coaching.redaction import RedactionError, luhn_ok


@pytest.mark.parametrize("text, masked", [
    ("My card is 4111 1111 1111 1111, thanks.", "My card is [CARD], thanks."),
    ("it's 4111-1111-1111-1111", "it's [CARD]"),
    ("the number is four one one one one one one one one one one one one one one one",
     "the number is [CARD]"),
    ("four double one one, one one one one, one one one one, one one one one", "[CARD]"),
    ("amex three seven eight two eight two two four six three one zero zero oh five",
     "amex [CARD]"),
    ("card 4111 1111 1111 1111 and the CVV is 123.", "card [CARD] and the CVV is [CVV]."),
    ("my social is 078-05-1120", "my social is [SSN]"),
    ("social security number is one two three four five six seven eight nine",
     "social security number is [SSN]"),
    ("mail jane.doe+sales@acme.co.uk today", "mail [EMAIL] today"),
    ("it's jane dot doe at acme dot com", "it's [EMAIL]"),
    ("call me at (415) 555-0134", "call me at [PHONE]"),
    ("my cell is four one five five five five oh one three four", "my cell is [PHONE]"),
    ("+1 415 555 0134", "[PHONE]"),
])
def test_pii_is_masked(text, masked):
    assert redact(text).text == masked


@pytest.mark.parametrize("text", [
    "We have 20 seats across 3 teams and a budget of 50000 dollars for 2025.",
    "Version 4.2 shipped on the 14th; ticket 12345 is closed.",
    "I have one or two questions for you.",
    "Order 4111 1111 1111 1112 was shipped.",          # card-shaped but not Luhn-valid, no context
    "The code 123 is in the docs.",                   # 3 digits without card context
])
def test_ordinary_numbers_are_left_alone(text):
    result = redact(text)
    assert (result.text, result.spans) == (text, ())


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")


def test_card_context_masks_a_misheard_card_number():
    # one digit misheard breaks Luhn; after "card number" it is masked anyway
    assert redact("my card number is 4111 1111 1111 1112").text == "my card number is [CARD]"


def test_context_carries_over_to_the_next_segment_of_the_call():
    redactor = Redactor()
    assert redactor.redact("Sure, my card number is").text == "Sure, my card number is"
    assert redactor.redact("four one one one one one one one one one one one one one one two").text \
        == "[CARD]"
    assert redactor.redact("and the security code is seven three seven").text \
        == "and the security code is [CVV]"
    # a fresh call has no context
    assert Redactor().redact("seven three seven").text == "seven three seven"


def test_spans_give_word_indices_and_times_to_silence():
    words = [("my", 1000, 1200), ("card", 1200, 1500), ("is", 1500, 1600),
             ("4111", 1700, 2300), ("1111", 2300, 2900), ("1111", 2900, 3500),
             ("1111.", 3500, 4100), ("Thanks", 4300, 4700)]
    seg = SegmentInput.build("s1", "customer", "my card is 4111 1111 1111 1111. Thanks", 1000, 4700,
                             words)
    result = Redactor().redact_segment(seg)
    assert result.text == "my card is [CARD]. Thanks"
    (span,) = result.spans
    assert (span.kind, span.word_start, span.word_end) == ("card_number", 3, 7)
    assert (span.start_ms, span.end_ms) == (1700, 4100)


def test_spans_without_words_get_interpolated_times():
    result = Redactor().redact("call 4155550134 now", start_ms=10_000, end_ms=11_900)
    (span,) = result.spans
    assert span.word_start == -1
    assert 10_000 < span.start_ms < span.end_ms < 11_900


def test_bad_input_is_a_clear_error():
    with pytest.raises(RedactionError):
        redact(None)
