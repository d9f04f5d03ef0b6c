from media.eval.wer import word_error_rate, word_errors


def test_case_punctuation_and_digit_spelling_are_not_errors():
    assert word_error_rate("Press four for the previous message", "press 4 for the previous message.") == 0.0


def test_counts_each_kind_of_edit():
    result = word_errors("the cat sat on the mat", "the cat sat on a mat today")
    assert (result.substitutions, result.deletions, result.insertions) == (1, 0, 1)
    assert result.reference_words == 6
    assert abs(result.wer - 2 / 6) < 1e-9
    assert word_errors("one two three", "one three").deletions == 1


def test_results_add_up():
    total = word_errors("a b", "a b") + word_errors("c d", "c x")
    assert total.errors == 1 and total.reference_words == 4
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "hallucinated thanks") == 1.0
