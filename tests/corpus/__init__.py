"""The reply corpus and the simulated graduates: loading and validating the TOML files.

``tests/corpus/tuning/`` may be read when writing the rules that understand replies;
``tests/corpus/heldout/`` never is (see ``tests/corpus/README.md``). Every file is checked when
it is loaded: an unknown question, field, language or value raises ``CorpusError`` naming the
file and the entry.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PARTS = ("tuning", "heldout")
QUESTIONS = ("status", "employer", "business", "uses_skill", "job_alerts", "rating", "help")
LANGS = ("id", "jv-ngoko", "jv-krama", "mixed")
STATUSES = ("employed", "self_employed", "seeking", "studying")
ASK = "ASK"  # the field stays empty and the bot asks (again, or a follow-up)
HELP_VALUES = ("nothing", "need")
# Which expected fields an answer to each question may carry (several answers in one message).
FIELDS: dict[str, tuple[str, ...]] = {
    "status": ("status", "employer", "job_title", "business", "uses_skill", "job_alerts",
               "rating", "help"),
    "employer": ("employer", "job_title", "uses_skill"),
    "business": ("business",),
    "uses_skill": ("uses_skill",),
    "job_alerts": ("job_alerts",),
    "rating": ("rating",),
    "help": ("help",),
}
PERSONA_QUESTIONS = ("status", "employer", "job_title", "business", "uses_skill", "job_alerts",
                     "rating", "help", "multi", "generic")


class CorpusError(ValueError):
    """A corpus or persona file that does not follow the format."""


@dataclass(frozen=True)
class Reply:
    """One graduate's reply to one question, and how it should be read."""

    part: str
    file: str
    index: int
    question: str
    text: str
    lang: str
    expect: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.part}/{self.file}#{self.index}"


@dataclass(frozen=True)
class Persona:
    """A simulated graduate: the truth about them, their language and their phrasings."""

    part: str
    file: str
    index: int
    name: str
    lang: str
    status: str
    employer: str | None
    job_title: str | None
    uses_skill: bool | None
    job_alerts: bool | None
    rating: int
    help: str | None  # None: nothing to report; else the need, in their words
    says: dict[str, list[str]] = field(default_factory=dict)
    plain: bool = False  # answers with bare numbers and ya/tidak only, no behaviours

    @property
    def ref(self) -> str:
        return f"{self.part}/{self.file}#{self.index} ({self.name})"


def _fail(where: str, message: str) -> CorpusError:
    return CorpusError(f"{where}: {message}")


def _check_value(where: str, name: str, value: Any) -> None:
    def bad(expected: str) -> CorpusError:
        return _fail(where, f"expect.{name} = {value!r}: expected {expected}")

    if name == "status":
        if value not in STATUSES + (ASK,):
            raise bad(" | ".join(STATUSES + (ASK,)))
    elif name in ("employer", "business", "job_title"):
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise bad(f'a name, a list of accepted names, or "{ASK}"')
    elif name in ("uses_skill", "job_alerts"):
        if not (isinstance(value, bool) or value == ASK):
            raise bad(f'true | false | "{ASK}"')
    elif name == "rating":
        if not (value == ASK or (isinstance(value, int) and not isinstance(value, bool)
                                 and 1 <= value <= 5)):
            raise bad(f'1..5 | "{ASK}"')
    elif name == "help" and value not in HELP_VALUES + (ASK,):
        raise bad(" | ".join(HELP_VALUES + (ASK,)))


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise CorpusError(f"{path.name}: not valid TOML: {exc}") from None


def load_replies(part: str, root: Path = HERE) -> list[Reply]:
    """Every reply of a part (``tuning`` or ``heldout``), validated."""
    if part not in PARTS:
        raise CorpusError(f"unknown part {part!r} (known: {', '.join(PARTS)})")
    replies: list[Reply] = []
    for path in sorted((root / part).glob("*.toml")):
        if path.name.startswith("personas"):
            continue
        data = _read(path)
        unknown = sorted(set(data) - {"reply"})
        if unknown:
            raise CorpusError(f"{part}/{path.name}: unknown top-level key(s) {', '.join(unknown)}"
                              " (only [[reply]] tables)")
        for i, entry in enumerate(data.get("reply", []), start=1):
            where = f"{part}/{path.name} reply #{i}"
            if isinstance(entry.get("text"), str):
                where += f" ({entry['text'][:30]!r})"
            extra = sorted(set(entry) - {"question", "text", "lang", "expect", "note"})
            if extra:
                raise _fail(where, f"unknown key(s) {', '.join(extra)} "
                                   "(known: question, text, lang, expect, note)")
            question = entry.get("question")
            if question not in QUESTIONS:
                raise _fail(where, f"unknown question {question!r} "
                                   f"(known: {', '.join(QUESTIONS)})")
            if not isinstance(entry.get("text"), str):
                raise _fail(where, "text must be a string (it may be empty only for a tap)")
            if entry.get("lang") not in LANGS:
                raise _fail(where, f"unknown lang {entry.get('lang')!r} "
                                   f"(known: {', '.join(LANGS)})")
            expect = entry.get("expect")
            if not isinstance(expect, dict) or not expect:
                raise _fail(where, "expect must be a table with at least one field")
            for name, value in expect.items():
                if name not in FIELDS[question]:
                    raise _fail(where, f"unknown field expect.{name} for question {question!r} "
                                       f"(known: {', '.join(FIELDS[question])})")
                _check_value(where, name, value)
            if question not in expect and not (question == "status" and "status" in expect):
                raise _fail(where, f"expect must say how the {question!r} answer is read")
            replies.append(Reply(part, path.name, i, question, entry["text"], entry["lang"],
                                 dict(expect)))
    return replies


_PERSONA_KEYS = {"name", "lang", "status", "employer", "job_title", "uses_skill", "job_alerts",
                 "rating", "help", "says", "plain"}


def load_personas(part: str, root: Path = HERE) -> list[Persona]:
    """Every simulated graduate of a part, validated."""
    if part not in PARTS:
        raise CorpusError(f"unknown part {part!r} (known: {', '.join(PARTS)})")
    personas: list[Persona] = []
    for path in sorted((root / part).glob("personas*.toml")):
        data = _read(path)
        unknown = sorted(set(data) - {"persona"})
        if unknown:
            raise CorpusError(f"{part}/{path.name}: unknown top-level key(s) "
                              f"{', '.join(unknown)} (only [[persona]] tables)")
        for i, entry in enumerate(data.get("persona", []), start=1):
            where = f"{part}/{path.name} persona #{i} ({entry.get('name', '?')})"
            extra = sorted(set(entry) - _PERSONA_KEYS)
            if extra:
                raise _fail(where, f"unknown key(s) {', '.join(extra)} "
                                   f"(known: {', '.join(sorted(_PERSONA_KEYS))})")
            if not isinstance(entry.get("name"), str) or not entry["name"]:
                raise _fail(where, "name must be a non-empty string")
            if entry.get("lang") not in LANGS:
                raise _fail(where, f"unknown lang {entry.get('lang')!r} "
                                   f"(known: {', '.join(LANGS)})")
            status = entry.get("status")
            if status not in STATUSES:
                raise _fail(where, f"status {status!r}: expected {' | '.join(STATUSES)}")
            rating = entry.get("rating")
            if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
                raise _fail(where, f"rating {rating!r}: expected 1..5")
            for key in ("uses_skill", "job_alerts"):
                if key in entry and not isinstance(entry[key], bool):
                    raise _fail(where, f"{key} {entry[key]!r}: expected true or false")
            for key in ("employer", "job_title", "help"):
                if key in entry and not (isinstance(entry[key], str) and entry[key].strip()):
                    raise _fail(where, f"{key} must be a non-empty string when given")
            if status in ("employed", "self_employed") and "employer" not in entry:
                raise _fail(where, f"a {status} persona needs employer (the workplace or "
                                   "business)")
            if status == "employed" and "uses_skill" not in entry:
                raise _fail(where, "an employed persona needs uses_skill")
            if status == "seeking" and "job_alerts" not in entry:
                raise _fail(where, "a seeking persona needs job_alerts")
            says = entry.get("says", {})
            if not isinstance(says, dict):
                raise _fail(where, "says must be a table of question = [phrasings]")
            for key, phrasings in says.items():
                if key not in PERSONA_QUESTIONS:
                    raise _fail(where, f"unknown question says.{key} "
                                       f"(known: {', '.join(PERSONA_QUESTIONS)})")
                if (not isinstance(phrasings, list) or not phrasings
                        or not all(isinstance(p, str) for p in phrasings)):
                    raise _fail(where, f"says.{key} must be a non-empty list of strings")
            if "status" not in says and not entry.get("plain"):
                raise _fail(where, "says.status is needed (the persona's first answer)")
            personas.append(Persona(
                part, path.name, i, entry["name"], entry["lang"], status, entry.get("employer"),
                entry.get("job_title"), entry.get("uses_skill"), entry.get("job_alerts"), rating,
                entry.get("help"), {k: list(v) for k, v in says.items()},
                bool(entry.get("plain", False))))
    return personas
