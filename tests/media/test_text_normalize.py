from media.text_normalize import normalize_words


def test_normalisation_ignores_case_punctuation_and_digit_spelling():
    assert normalize_words("Press 4, for the previous message.") == [
        "press", "four", "for", "the", "previous", "message",
    ]


def test_bracketed_notes_are_not_speech():
    assert normalize_words("[ascending tones] Hello") == ["hello"]
