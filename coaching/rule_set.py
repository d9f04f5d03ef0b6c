"""An organization's coaching configuration: keyword sets, fillers, rules.

The format is JSON (a mapping, so YAML loaded by the caller works too).
``coaching/data/default_rule_set.json`` ships the defaults; an org's file
overrides them (``load_rule_set(org_mapping)``):

- ``keywords``: a category given replaces the default one; ``null`` drops it.
- ``rules``: a rule with an existing ``id`` replaces it, a new id is added;
  ``disable_rules: [ids]`` drops defaults.
- ``fillers`` replaces the list; ``options`` are merged key by key.
- ``"extends": false`` starts from nothing instead of the defaults.

Everything is validated up front and errors name the offending path
(``rules[3].metric: ...``), so a bad org file is rejected when it is loaded,
never in the middle of a call.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from coaching.records import PARTIES, SEVERITIES

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "default_rule_set.json"

TRIGGERS = ("keyword", "metric", "sentiment", "silence", "checklist")
# metric rules compare one of these (seconds for *_s, fractions for ratios)
METRICS = ("talk_ratio", "current_monologue_s", "longest_monologue_s", "rep_wpm", "customer_wpm",
           "rep_interruptions", "customer_interruptions", "rep_fillers", "customer_fillers",
           "patience_s", "silence_s")
OPS = (">", ">=", "<", "<=")
OPTION_DEFAULTS: dict[str, float] = {
    "max_prompts_per_minute": 4,
    "fuzzy_threshold": 86,
    "sentiment_alpha": 0.35,
    "turn_gap_ms": 3000,
    "backchannel_max_words": 2,
    "prompt_follow_s": 30,  # how soon the rep must act on a prompt to count as following it
}


class RuleSetError(ValueError):
    """A rule set is invalid; the message names the path of the bad value."""


@dataclass(frozen=True, slots=True)
class Phrase:
    text: str
    link: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeywordCategory:
    name: str
    phrases: tuple[Phrase, ...]
    parties: tuple[str, ...] = PARTIES
    fuzzy: bool = False          # edit-distance matching (for names ASR misspells)
    phonetic: bool = False       # double-metaphone matching (for names ASR respells)
    hotword: bool = False        # passed to the transcriber as a hot word
    objection: bool = False      # listed among the call's objections in the summary


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    trigger: str
    severity: str
    title: str
    body: str
    cooldown_s: float = 60.0
    max_fires: int | None = None
    link: str | None = None
    party: str | None = None
    category: str | None = None     # keyword, checklist
    metric: str | None = None       # metric
    op: str = ">"                   # metric
    value: float | None = None      # metric
    after_s: float = 0.0            # metric: not before this much of the call
    drop: float | None = None       # sentiment: fall from the party's peak trend
    below: float | None = None      # sentiment: trend under this value
    seconds: float | None = None    # silence
    by_s: float | None = None       # checklist deadline from the call's start
    label: str | None = None        # checklist: the item as the rep's checklist names it


@dataclass(frozen=True, slots=True)
class RuleSet:
    name: str
    keywords: tuple[KeywordCategory, ...]
    fillers: tuple[str, ...]
    rules: tuple[Rule, ...]
    options: Mapping[str, float]

    def category(self, name: str) -> KeywordCategory | None:
        return next((c for c in self.keywords if c.name == name), None)

    def option(self, name: str) -> float:
        return self.options.get(name, OPTION_DEFAULTS[name])


@cache
def _default_mapping() -> dict[str, Any]:
    return json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))


@cache
def default_rule_set() -> RuleSet:
    return parse_rule_set(_default_mapping())


def load_rule_set(source: Mapping[str, Any] | str | Path | None = None) -> RuleSet:
    """The default rule set overridden by an org's mapping, JSON text or JSON file."""
    if source is None:
        return default_rule_set()
    if isinstance(source, Path):
        try:
            source = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise RuleSetError(f"cannot read rule set file {source}: {exc}") from None
    if isinstance(source, str):
        try:
            source = json.loads(source)
        except json.JSONDecodeError as exc:
            raise RuleSetError(f"rule set is not valid JSON: {exc}") from None
    if not isinstance(source, Mapping):
        raise RuleSetError(f"rule set must be a JSON object, got {type(source).__name__}")
    if source.get("extends", True) is False:
        return parse_rule_set(source)
    return parse_rule_set(merge(_default_mapping(), source))


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    unknown = set(override) - {"name", "extends", "keywords", "rules", "disable_rules",
                               "fillers", "options"}
    if unknown:
        raise RuleSetError(f"unknown rule set field(s): {sorted(unknown)}")
    if "name" in override:
        merged["name"] = override["name"]
    if "fillers" in override:
        merged["fillers"] = override["fillers"]
    if "options" in override:
        _expect(override["options"], Mapping, "options")
        merged["options"] = {**merged.get("options", {}), **override["options"]}
    if "keywords" in override:
        _expect(override["keywords"], Mapping, "keywords")
        for name, category in override["keywords"].items():
            if category is None:
                merged["keywords"].pop(name, None)
            else:
                merged["keywords"][name] = category
    rules = list(merged.get("rules", []))
    if "disable_rules" in override:
        _expect(override["disable_rules"], list, "disable_rules")
        drop = set(override["disable_rules"])
        missing = drop - {r.get("id") for r in rules}
        if missing:
            raise RuleSetError(f"disable_rules: no such rule(s) {sorted(missing)}")
        rules = [r for r in rules if r.get("id") not in drop]
    if "rules" in override:
        _expect(override["rules"], list, "rules")
        by_id = {r.get("id"): i for i, r in enumerate(rules)}
        for rule in override["rules"]:
            _expect(rule, Mapping, "rules[]")
            if rule.get("id") in by_id:
                rules[by_id[rule["id"]]] = rule
            else:
                rules.append(rule)
    merged["rules"] = rules
    return merged


def parse_rule_set(data: Mapping[str, Any]) -> RuleSet:
    _expect(data, Mapping, "rule set")
    name = data.get("name", "custom")
    _expect(name, str, "name")
    options = dict(data.get("options") or {})
    for key, value in options.items():
        if key not in OPTION_DEFAULTS:
            raise RuleSetError(f"options.{key}: unknown option (known: {sorted(OPTION_DEFAULTS)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise RuleSetError(f"options.{key}: must be a positive number, got {value!r}")
    if options.get("sentiment_alpha", 0.5) > 1:
        raise RuleSetError("options.sentiment_alpha: must be at most 1")
    if not 0 < options.get("fuzzy_threshold", 86) <= 100:
        raise RuleSetError("options.fuzzy_threshold: must be in (0, 100]")
    fillers = data.get("fillers", [])
    _expect(fillers, list, "fillers")
    for i, filler in enumerate(fillers):
        if not isinstance(filler, str) or not filler.strip():
            raise RuleSetError(f"fillers[{i}]: must be a non-empty string")
    keywords_data = data.get("keywords", {})
    _expect(keywords_data, Mapping, "keywords")
    categories = tuple(_category(name, value) for name, value in keywords_data.items())
    rules_data = data.get("rules", [])
    _expect(rules_data, list, "rules")
    rules = tuple(_rule(i, r, keywords_data) for i, r in enumerate(rules_data))
    ids = [r.id for r in rules]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise RuleSetError(f"rules: duplicate id(s) {dupes}")
    return RuleSet(name, categories, tuple(f.strip() for f in fillers), rules, options)


def _expect(value: Any, kind: type | tuple[type, ...], path: str) -> None:
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        want = {"Mapping": "an object", "list": "a list", "str": "a string"}.get(want, want)
        raise RuleSetError(f"{path}: must be {want}, got {type(value).__name__}")


def _category(name: str, data: Any) -> KeywordCategory:
    path = f"keywords.{name}"
    _expect(data, Mapping, path)
    unknown = set(data) - {"phrases", "parties", "fuzzy", "phonetic", "hotword", "objection"}
    if unknown:
        raise RuleSetError(f"{path}: unknown field(s) {sorted(unknown)}")
    phrases_data = data.get("phrases")
    _expect(phrases_data, list, f"{path}.phrases")
    if not phrases_data:
        raise RuleSetError(f"{path}.phrases: must not be empty")
    phrases = []
    for i, item in enumerate(phrases_data):
        where = f"{path}.phrases[{i}]"
        if isinstance(item, str):
            item = {"phrase": item}
        _expect(item, Mapping, where)
        text = item.get("phrase")
        if not isinstance(text, str) or not text.strip():
            raise RuleSetError(f"{where}.phrase: must be a non-empty string")
        aliases = item.get("aliases", [])
        _expect(aliases, list, f"{where}.aliases")
        if not all(isinstance(a, str) and a.strip() for a in aliases):
            raise RuleSetError(f"{where}.aliases: must be non-empty strings")
        link = item.get("link")
        if link is not None and not isinstance(link, str):
            raise RuleSetError(f"{where}.link: must be a string")
        phrases.append(Phrase(text.strip(), link, tuple(a.strip() for a in aliases)))
    parties = data.get("parties", list(PARTIES))
    _expect(parties, list, f"{path}.parties")
    for party in parties:
        if party not in PARTIES:
            raise RuleSetError(f"{path}.parties: {party!r} is not one of {PARTIES}")
    flags = {}
    for flag in ("fuzzy", "phonetic", "hotword", "objection"):
        flags[flag] = data.get(flag, False)
        _expect(flags[flag], bool, f"{path}.{flag}")
    return KeywordCategory(name, tuple(phrases), tuple(parties), **flags)


_RULE_FIELDS = {"id", "trigger", "severity", "title", "body", "cooldown_s", "max_fires", "link",
                "party", "category", "metric", "op", "value", "after_s", "drop", "below",
                "seconds", "by_s", "label"}


def _rule(index: int, data: Any, keywords: Mapping[str, Any]) -> Rule:
    path = f"rules[{index}]"
    _expect(data, Mapping, path)
    unknown = set(data) - _RULE_FIELDS
    if unknown:
        raise RuleSetError(f"{path}: unknown field(s) {sorted(unknown)}")
    for key in ("id", "trigger", "title", "body"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise RuleSetError(f"{path}.{key}: must be a non-empty string")
    path = f"rules[{index}] ({data['id']})"
    trigger = data["trigger"]
    if trigger not in TRIGGERS:
        raise RuleSetError(f"{path}.trigger: {trigger!r} is not one of {TRIGGERS}")
    severity = data.get("severity", "info")
    if severity not in SEVERITIES:
        raise RuleSetError(f"{path}.severity: {severity!r} is not one of {SEVERITIES}")
    party = data.get("party")
    if party is not None and party not in PARTIES:
        raise RuleSetError(f"{path}.party: {party!r} is not one of {PARTIES}")
    numbers = {}
    for key in ("cooldown_s", "value", "after_s", "drop", "below", "seconds", "by_s"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise RuleSetError(f"{path}.{key}: must be a number, got {value!r}")
            if key not in ("value", "below") and value < 0:
                raise RuleSetError(f"{path}.{key}: must not be negative")
            numbers[key] = float(value)
    max_fires = data.get("max_fires")
    if max_fires is not None and (isinstance(max_fires, bool) or not isinstance(max_fires, int)
                                  or max_fires < 1):
        raise RuleSetError(f"{path}.max_fires: must be a positive integer")
    link = data.get("link")
    if link is not None and not isinstance(link, str):
        raise RuleSetError(f"{path}.link: must be a string")
    label = data.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise RuleSetError(f"{path}.label: must be a non-empty string")
    category = data.get("category")
    metric = data.get("metric")
    op = data.get("op", ">")
    if trigger in ("keyword", "checklist") and category not in keywords:
        raise RuleSetError(f"{path}.category: {category!r} is not a keyword category "
                           f"(known: {sorted(keywords)})")
    if trigger == "metric":
        if metric not in METRICS:
            raise RuleSetError(f"{path}.metric: {metric!r} is not one of {METRICS}")
        if op not in OPS:
            raise RuleSetError(f"{path}.op: {op!r} is not one of {OPS}")
        if "value" not in numbers:
            raise RuleSetError(f"{path}.value: a metric rule needs a threshold value")
    if trigger == "sentiment" and "drop" not in numbers and "below" not in numbers:
        raise RuleSetError(f"{path}: a sentiment rule needs 'drop' and/or 'below'")
    if trigger == "silence" and "seconds" not in numbers:
        raise RuleSetError(f"{path}.seconds: a silence rule needs a number of seconds")
    if trigger == "checklist":
        if "by_s" not in numbers:
            raise RuleSetError(f"{path}.by_s: a checklist rule needs a deadline in seconds")
        max_fires = 1       # a missed checklist item is said once
    return Rule(id=data["id"], trigger=trigger, severity=severity, title=data["title"],
                body=data["body"], cooldown_s=numbers.get("cooldown_s", 60.0),
                max_fires=max_fires, link=link, party=party, category=category, metric=metric,
                op=op, value=numbers.get("value"), after_s=numbers.get("after_s", 0.0),
                drop=numbers.get("drop"), below=numbers.get("below"),
                seconds=numbers.get("seconds"), by_s=numbers.get("by_s"),
                label=label.strip() if label else None)
