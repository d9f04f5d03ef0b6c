"""Text normalisation for comparing transcripts word by word.

Case, punctuation and a few spelling variants ("one" vs "1", "okay" vs
"ok") are not differences in what was said, so two texts that differ only
in them normalise to the same words. The streaming transcriber compares
successive hypotheses with it; word error rate scores with it.

``written_form`` goes the other way for what people read: a final's timed
words as they are written ("ill-disposed", "$500", "4111", "joe@xyz.com").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from media.transcript import Word

_NUMBER_WORDS = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
    "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten",
    "11": "eleven", "12": "twelve", "20": "twenty", "30": "thirty", "40": "forty",
    "50": "fifty", "60": "sixty", "100": "hundred",
}
_SPELLINGS = {"ok": "okay", "mr": "mister", "mrs": "missus", "dr": "doctor", "%": "percent"}
_SPLIT_COMPOUND = re.compile(r"[-_/]")
_DROP = re.compile(r"[^a-z0-9' ]+")


def normalize_words(text: str) -> list[str]:
    """Lower-cased words without punctuation, digits spelt out, common variants unified."""
    text = text.lower().replace("’", "'").replace("%", " percent")
    # "$500" is how "500 dollars" is written
    text = re.sub(r"\$(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = _SPLIT_COMPOUND.sub(" ", text)
    # bracketed notes in reference texts ("[ascending tones]") are not speech
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _DROP.sub(" ", text)
    words = []
    for word in text.split():
        word = word.strip("'")
        if not word:
            continue
        if word.endswith("'s") and word[:-2].isdigit():
            word = word[:-2]
        word = _NUMBER_WORDS.get(word, word)
        word = _SPELLINGS.get(word, word)
        words.append(word)
    return words


# -- written form ---------------------------------------------------------------------------------
# What a speech engine writes is turned into text as people write it: pieces of one word joined
# ("ill" "-disposed"), "$500 dollars" as "$500", a spoken run of digits as digits ("four, one, one,
# one" -> "4111") and a spelled e-mail address as an address ("J O E at X Y Z dot C O M").

_DIGIT_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "oh": "0",
}
_MIN_DIGIT_RUN = 3  # "one, two" is more often words than a number; three digits in a row are a number
# a piece that continues the word before it: punctuation or a clitic, never a lone dash
_CONTINUES = re.compile(r"^(?:[.,;:!?%)\]}]|-\w|'(?:s|re|ll|ve|d|t|m)\b)", re.IGNORECASE)
_TRAILING = re.compile(r"[.,;:!?]+$")
_AMOUNT = re.compile(r"^(\$?)(\d[\d,]*(?:\.\d+)?)$")
# "visit us at example dot com" is a web address, not us@example.com
_NOT_LOCAL = frozenset({
    "us", "me", "you", "him", "her", "them", "it", "is", "be", "are", "was", "were", "here",
    "there", "this", "that", "look", "go", "come", "online", "site", "website", "page", "meet",
    "stay", "arrive",
})
_TLDS = frozenset({
    "com", "org", "net", "edu", "gov", "io", "co", "uk", "us", "ca", "de", "fr", "au", "info",
    "biz", "me", "ai", "app", "dev",
})


def written_form(words: Sequence[Word]) -> tuple[Word, ...]:
    """The words of one utterance as people write them; merged words span their parts' times."""
    out = _join_pieces(words)
    out = _amounts(out)
    out = _digit_runs(out)
    return tuple(_emails(out))


def _merge(parts: Sequence[Word], text: str) -> Word:
    return Word(text, parts[0].start_ms, max(p.end_ms for p in parts), min(p.probability for p in parts))


def _join_pieces(words: Sequence[Word]) -> list[Word]:
    out: list[Word] = []
    for word in words:
        text = word.text.strip()
        if not text:
            continue
        if out and (_CONTINUES.match(text) or (out[-1].text.endswith("-") and out[-1].text[:-1].isalpha()
                                               and text[:1].isalpha())):
            # "inter-" "asterisk": Whisper sometimes writes a compound's second half as a new word
            out[-1] = _merge((out[-1], word), out[-1].text + text)
        else:
            out.append(Word(text, word.start_ms, word.end_ms, word.probability))
    return out


def _split_trailing(text: str) -> tuple[str, str]:
    match = _TRAILING.search(text)
    return (text[: match.start()], match.group()) if match else (text, "")


def _amounts(words: list[Word]) -> list[Word]:
    """"$500 dollars" and "500 dollars" -> "$500"."""
    out: list[Word] = []
    for word in words:
        core, tail = _split_trailing(word.text)
        if out and core.lower() in ("dollars", "dollar"):
            number, number_tail = _split_trailing(out[-1].text)
            amount = _AMOUNT.match(number)
            if amount and not number_tail:
                out[-1] = _merge((out[-1], word), "$" + amount.group(2) + tail)
                continue
        out.append(word)
    return out


def _digit_of(text: str) -> str | None:
    core, _ = _split_trailing(text)
    core = core.lower()
    if len(core) == 1 and core.isdigit():
        return core
    return _DIGIT_WORDS.get(core)


def _digit_runs(words: list[Word]) -> list[Word]:
    out: list[Word] = []
    i = 0
    while i < len(words):
        j = i
        # "oh" is a zero inside a run of digits, not at its start ("Oh, one, two")
        while j < len(words) and _digit_of(words[j].text) is not None and not (
            j == i and _split_trailing(words[j].text)[0].lower() == "oh"
        ):
            j += 1
            # a sentence end closes the run: "Press one. Two ..." are separate choices
            if _split_trailing(words[j - 1].text)[1].strip(",") and j < len(words):
                break
        if j - i >= _MIN_DIGIT_RUN:
            run = words[i:j]
            digits = "".join(_digit_of(w.text) for w in run)
            out.append(_merge(run, digits + _split_trailing(run[-1].text)[1].lstrip(",")))
            i = j
        else:
            out.append(words[i])
            i += 1
    return out


def _label(words: list[Word], i: int, step: int) -> tuple[str, int]:
    """An address label read from ``i`` on (``step`` -1: backwards): one word, or spelled letters."""
    letters = []
    j = i
    while 0 <= j < len(words):
        core, tail = _split_trailing(words[j].text)
        if len(core) != 1 or not core.isalnum() or (tail and step < 0 and j != i):
            break
        letters.append(core.lower())
        if tail and step > 0:
            j += step
            break
        j += step
    if letters:
        return "".join(reversed(letters) if step < 0 else letters), j - step
    if 0 <= i < len(words):
        core, _ = _split_trailing(words[i].text)
        if re.fullmatch(r"[A-Za-z0-9][\w.+-]*", core):
            return core.lower(), i
    return "", i


def _emails(words: list[Word]) -> list[Word]:
    """"J O E at X Y Z dot C O M" / "joe at example dot com" -> "joe@xyz.com"."""
    i = 0
    out = list(words)
    while i < len(out):
        core, tail = _split_trailing(out[i].text)
        if core.lower() != "at" or tail or i == 0 or _split_trailing(out[i - 1].text)[0].lower() in _NOT_LOCAL:
            i += 1
            continue
        local, first = _label(out, i - 1, -1)
        domain, last = _label(out, i + 1, 1)
        labels = [domain] if domain else []
        while labels and _split_trailing(out[last].text)[1] == "" and last + 2 < len(out) and (
            _split_trailing(out[last + 1].text)[0].lower() == "dot"
        ):
            label, end = _label(out, last + 2, 1)
            if not label:
                break
            labels.append(label)
            last = end
        address_labels = ".".join(labels).split(".")
        if not local or len(address_labels) < 2 or address_labels[-1] not in _TLDS:
            i += 1
            continue
        tail = _split_trailing(out[last].text)[1]
        merged = _merge(out[first : last + 1], f"{local}@{'.'.join(address_labels)}{tail}")
        out[first : last + 1] = [merged]
        i = first + 1
    return out
