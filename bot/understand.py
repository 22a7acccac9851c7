"""Understanding graduates' informal WhatsApp replies.

Graduates answer on cheap phones in informal Indonesian and Javanese (ngoko and krama), now and
then simple English: digits and number words ("2.", "dua", "papat", "2️⃣"), chat abbreviations
("blm dpt krj", "gk ad"), stretched letters ("iyaaa"), typos ("usha"), emoji and extra words
around the answer ("nggih mas", "alhamdulillah sampun nyambut damel wonten PT Pan Brothers").
Each ``read_*`` function takes the raw text and returns a ``Reading`` (the value, how it was
read, and the workplace or school the reply names), or None when the reply cannot be placed:
the conversation then asks again.

Pure functions of the text and of the vocabulary. The vocabulary is data: one TOML file per
language in ``bot/vocabulary`` (``id.toml``, ``jv.toml``), which a deployment may extend with
files of its own (``[understanding] vocabulary``; ``use_vocabulary``). A reply is read in
three steps:

1. its words are found (keycaps become digits, everything is lower-cased) and each spelling,
   abbreviation or dialect word of ``[words]`` is replaced by the Indonesian it stands for
   ("durung" -> "belum", "nyambut gawe" -> "kerja", "gk ad" -> "gak ada");
2. each word (or phrase) is looked up in the table of the question (``[status]``,
   ``[yes_no]``, ``[rating]``, ``[nothing]``): as written, with stretched letters squeezed
   ("iyaaa" -> "iya"), without "-nya"/"-lah", and for a few typo-prone words as a close
   misspelling with the same first letter ("krja" -> "kerja");
3. the rules below turn the concepts into an answer.

Meanings staff taught Kabar for whole replies ("mboten wonten blas" -> nothing to report) are
passed in as ``learned`` ({phrase_key(reply): meaning}) and win over the rules.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

EMPLOYED, SELF_EMPLOYED, SEEKING, STUDYING = "employed", "self_employed", "seeking", "studying"
STATUS_BY_CHOICE = {1: EMPLOYED, 2: SELF_EMPLOYED, 3: SEEKING, 4: STUDYING}
STATUSES = tuple(STATUS_BY_CHOICE.values())

# How a value was read (bot.models.READ_HOW has the full list, with staff corrections).
CHOICE, WORDS, GUESS, LEARNED = "choice", "words", "guess", "learned"

VOCABULARY_DIR = Path(__file__).with_name("vocabulary")
LANGUAGE_FILES = ("id.toml", "jv.toml")
TABLES = ("status", "yes_no", "rating", "nothing")
ANSWER_LISTS = ("generic_workplace", "generic_business", "titles", "title_parts", "greetings",
                "laughter")
SECTIONS = ("words", "numbers", *TABLES, "typos", "keywords", "answers")
KEYWORD_NAMES = ("help", "jobs", "checkin", "stop", "start", "interest", "join", "broadcast",
                 "summary")
PHRASE_KEY_LIMIT = 200


@dataclass(frozen=True)
class Reading:
    """What a reply says: the value, how it was read (CHOICE, WORDS, GUESS or LEARNED), and
    the workplace, business or school it names (``detail``) with a job title apart."""

    value: Any
    how: str
    detail: str | None = None
    title: str | None = None


# --- text and words --------------------------------------------------------------------------

_KEYCAP = re.compile(r"([0-9])\ufe0f?\u20e3")  # 1️⃣ is "1", VS16, COMBINING ENCLOSING KEYCAP
_WORD = re.compile(r"[^\W_]+")  # a run of letters and digits, in any script
_STRETCH = re.compile(r"([^\W\d_])\1+")


def _prepare(text: str) -> str:
    """NFKC-normalise a message and turn keycap emoji (2️⃣, 🔟) into plain digits."""
    text = unicodedata.normalize("NFKC", text or "").replace("\U0001f51f", "10")
    return _KEYCAP.sub(r"\1", text)


def normalize(text: str) -> str:
    """Lower-cased words and digits of a message, one space apart; punctuation and emoji gone."""
    return " ".join(match.group().lower() for match in _WORD.finditer(_prepare(text)))


def _squeeze(word: str) -> str:
    """Collapse stretched letters: "iyaaa" -> "iya", "nggak" -> "ngak"."""
    return _STRETCH.sub(r"\1", word)


def phrase_key(text: str) -> str:
    """The key a whole reply is grouped and taught by: its words, stretched letters squeezed
    ("Mboten wonten!!" and "mbotenn wontennn" are both "mboten wonten")."""
    return " ".join(_squeeze(word) for word in normalize(text).split())[:PHRASE_KEY_LIMIT].rstrip()


# --- the vocabulary files --------------------------------------------------------------------

class VocabularyError(ValueError):
    """A vocabulary file that cannot be used; the message names the file and line."""


@dataclass
class _Origin:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def _line_of(lines: list[str], section: str, entry: str, nth: int = 1) -> int:
    """The line of the ``nth`` ``entry`` (a quoted word or a key) in ``section`` of a file;
    0 if unknown."""
    in_section = False
    quoted, bare = f'"{entry}"', re.compile(rf"^\s*{re.escape(entry)}\s*=")
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("["):
            in_section = stripped.strip("[] ") == section
            continue
        if in_section and (quoted in line or bare.match(line)):
            nth -= line.count(quoted) or 1
            if nth <= 0:
                return number
    return 0


class _Table:
    """Words and phrases of one question mapped to concepts, tolerant of stretched letters,
    suffixes and typos in chosen words."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.concepts: dict[tuple[str, ...], str] = {}
        self.origins: dict[tuple[str, ...], _Origin] = {}
        self.longest = 1
        self.typo_targets: list[str] = []

    def add(self, concept: str, phrase: str, origin: _Origin) -> None:
        key = tuple(_squeeze(word) for word in phrase.split())
        if not key:
            raise VocabularyError(f"{origin}: empty word in [{self.name}] {concept}")
        if key in self.concepts:
            raise VocabularyError(
                f"{origin}: {phrase!r} is listed twice in [{self.name}] (also at "
                f"{self.origins[key]} as {self.concepts[key]})")
        self.concepts[key] = concept
        self.origins[key] = origin
        self.longest = max(self.longest, len(key))

    def word(self, word: str) -> str | None:
        """Concept of one lower-case word, or None when the word is unknown."""
        key = _squeeze(word)
        if (key,) in self.concepts:
            return self.concepts[(key,)]
        if len(key) > 2 and key.endswith("2") and key[:-1].isalpha():  # "apa2" = "apa-apa"
            return self.word(key[:-1])
        for suffix in ("nya", "lah", "ne"):  # "kerjaannya", "bisalah", "kendalane"
            if len(key) > len(suffix) + 2 and key.endswith(suffix) and \
                    (key[: -len(suffix)],) in self.concepts:
                return self.concepts[(key[: -len(suffix)],)]
        if len(key) >= 4 and key.isalpha():
            # Typos keep the first letter; proper nouns ("Karawang") must not look like words.
            targets = [target for target in self.typo_targets if target[0] == key[0]]
            close = get_close_matches(key, targets, n=1, cutoff=0.8)
            if close:
                return self.concepts[(close[0],)]
        return None

    def is_typo(self, word: str) -> bool:
        """Whether ``word`` is known only as a misspelling (its reading is a guess)."""
        key = _squeeze(word)
        return (key,) not in self.concepts and self.word(word) is not None and not (
            key.endswith("2") or any(key.endswith(s) for s in ("nya", "lah", "ne")))

    def concepts_of(self, words: Sequence[str]) -> list[str | None]:
        """Concept of each word, in order; a phrase gives its concept to each of its words."""
        concepts: list[str | None] = []
        i = 0
        while i < len(words):
            for size in range(min(self.longest, len(words) - i), 1, -1):
                key = tuple(_squeeze(word) for word in words[i:i + size])
                if key in self.concepts:
                    concepts.extend([self.concepts[key]] * size)
                    i += size
                    break
            else:
                concepts.append(self.word(words[i]))
                i += 1
        return concepts


@dataclass
class Vocabulary:
    """Every vocabulary file merged; built by ``load_vocabulary``."""

    files: list[str] = field(default_factory=list)
    words: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    word_origins: dict[tuple[str, ...], _Origin] = field(default_factory=dict)
    longest_phrase: int = 1
    numbers: dict[str, int] = field(default_factory=dict)
    tables: dict[str, _Table] = field(default_factory=lambda: {t: _Table(t) for t in TABLES})
    keywords: dict[str, str] = field(default_factory=dict)
    answers: dict[str, set[tuple[str, ...]]] = field(
        default_factory=lambda: {name: set() for name in ANSWER_LISTS})

    def table(self, name: str) -> _Table:
        return self.tables[name]


def _as_words(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise VocabularyError(f"{where} must be a list of words in quotes")
    return [" ".join(v.lower().split()) for v in value]


def _load_file(vocabulary: Vocabulary, path: Path) -> None:
    name = str(path)
    try:
        raw = path.read_text(encoding="utf-8")
        data = tomllib.loads(raw)
    except OSError as exc:
        raise VocabularyError(f"{name}: cannot be read ({exc.strerror or exc})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise VocabularyError(f"{name}: not valid TOML: {exc}") from exc
    lines = raw.splitlines()
    vocabulary.files.append(name)

    seen: dict[tuple[str, str], int] = {}

    def origin(section: str, entry: str) -> _Origin:
        seen[section, entry] = seen.get((section, entry), 0) + 1
        return _Origin(name, _line_of(lines, section, entry, seen[section, entry]))

    for section in data:
        if section not in SECTIONS:
            raise VocabularyError(f"{name}: unknown section [{section}]; the sections are "
                                  f"{', '.join(SECTIONS)}")
    for phrase, stands_for in data.get("words", {}).items():
        where = origin("words", phrase)
        if not isinstance(stands_for, str) or not stands_for.split():
            raise VocabularyError(f"{where}: [words] {phrase!r} must stand for words in quotes")
        key = tuple(phrase.lower().split())
        if key in vocabulary.words:
            raise VocabularyError(f"{where}: {phrase!r} is listed twice in [words] (also at "
                                  f"{vocabulary.word_origins[key]})")
        vocabulary.words[key] = tuple(stands_for.lower().split())
        vocabulary.word_origins[key] = where
        vocabulary.longest_phrase = max(vocabulary.longest_phrase, len(key))
    for word, number in data.get("numbers", {}).items():
        where = origin("numbers", word)
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= 10:
            raise VocabularyError(f"{where}: [numbers] {word!r} must be a whole number 0-10")
        if word.lower() in vocabulary.numbers:
            raise VocabularyError(f"{where}: {word!r} is listed twice in [numbers]")
        vocabulary.numbers[word.lower()] = number
    for table_name in TABLES:
        table = vocabulary.tables[table_name]
        for concept, phrases in data.get(table_name, {}).items():
            for phrase in _as_words(phrases, f"{name}: [{table_name}] {concept}"):
                table.add(concept, phrase, origin(table_name, phrase))
    for table_name, words in data.get("typos", {}).items():
        if table_name not in TABLES:
            raise VocabularyError(f"{origin('typos', table_name)}: [typos] {table_name!r} is "
                                  f"not a table ({', '.join(TABLES)})")
        vocabulary.tables[table_name].typo_targets += [
            _squeeze(w) for w in _as_words(words, f"{name}: [typos] {table_name}")]
    for word, command in data.get("keywords", {}).items():
        where = origin("keywords", word)
        if command not in KEYWORD_NAMES:
            raise VocabularyError(f"{where}: [keywords] {word!r} = {command!r}: the commands "
                                  f"are {', '.join(KEYWORD_NAMES)}")
        key = re.sub(r"[\s\-_]+", "", word).upper()
        if key in vocabulary.keywords:
            raise VocabularyError(f"{where}: keyword {word!r} is listed twice")
        vocabulary.keywords[key] = command
    for list_name, words in data.get("answers", {}).items():
        if list_name not in ANSWER_LISTS:
            raise VocabularyError(f"{origin('answers', list_name)}: [answers] {list_name!r} is "
                                  f"unknown; the lists are {', '.join(ANSWER_LISTS)}")
        for phrase in _as_words(words, f"{name}: [answers] {list_name}"):
            key = tuple(phrase.split())
            if key in vocabulary.answers[list_name]:
                raise VocabularyError(f"{origin('answers', phrase)}: {phrase!r} is listed twice "
                                      f"in [answers] {list_name}")
            vocabulary.answers[list_name].add(key)


def _check(vocabulary: Vocabulary) -> None:
    """Refuse what would never be read: a replaced word that is also in a table, a typo
    target that is not in its table."""
    for table in vocabulary.tables.values():
        for key, where in table.origins.items():
            stands_for = vocabulary.words.get(key)
            if stands_for is not None and tuple(map(_squeeze, stands_for)) != key:
                raise VocabularyError(
                    f"{where}: {' '.join(key)!r} in [{table.name}] is never read: [words] at "
                    f"{vocabulary.word_origins[key]} replaces it with "
                    f"{' '.join(vocabulary.words[key])!r}")
        unknown = {t for t in table.typo_targets if (t,) not in table.concepts}
        if unknown:
            raise VocabularyError(f"[typos] {table.name}: {sorted(unknown)} are not in "
                                  f"[{table.name}] ({', '.join(vocabulary.files)})")


def load_vocabulary(extra: Iterable[str | Path] = ()) -> Vocabulary:
    """Kabar's vocabulary files and a deployment's ``extra`` ones, merged and checked.

    Raises VocabularyError naming the file and line of anything wrong."""
    vocabulary = Vocabulary()
    for path in [*(VOCABULARY_DIR / f for f in LANGUAGE_FILES), *map(Path, extra)]:
        _load_file(vocabulary, path)
    _check(vocabulary)
    return vocabulary


_V = load_vocabulary()
_V_EXTRA: tuple[str, ...] = ()


def use_vocabulary(extra: Iterable[str | Path] = ()) -> Vocabulary:
    """Read from now on with Kabar's files plus a deployment's ``extra`` ones (the
    configuration's ``understanding.vocabulary``); cheap when they are already in use."""
    global _V, _V_EXTRA
    wanted = tuple(str(path) for path in extra)
    if wanted != _V_EXTRA:
        _V, _V_EXTRA = load_vocabulary(wanted), wanted
    return _V


def vocabulary() -> Vocabulary:
    return _V


@dataclass
class _Words:
    """A reply's words as read: the prepared text, each word after [words] replacements and
    the span of the original text it came from."""

    prepared: str
    words: list[str]
    spans: list[tuple[int, int]]


def _words(text: str) -> _Words:
    prepared = _prepare(text)
    found = [(m.group().lower(), m.span()) for m in _WORD.finditer(prepared)]
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    i = 0
    replacements = _V.words
    while i < len(found):
        for size in range(min(_V.longest_phrase, len(found) - i), 0, -1):
            original = tuple(word for word, _ in found[i:i + size])
            stands_for = replacements.get(original)
            if stands_for is None and size == 1:
                stands_for = replacements.get((_squeeze(original[0]),))
            if stands_for is not None:
                span = (found[i][1][0], found[i + size - 1][1][1])
                words += stands_for
                spans += [span] * len(stands_for)
                i += size
                break
        else:
            words.append(found[i][0])
            spans.append(found[i][1])
            i += 1
    return _Words(prepared, words, spans)


def words_of(text: str) -> list[str]:
    """The words of a reply as Kabar reads them (after [words] replacements)."""
    return _words(text).words


def _learned(learned: Mapping[str, str] | None, text: str) -> str | None:
    """The meaning staff taught for this reply: its phrase as a whole, else without the
    filler words around it ("gaskeun kak" is "gaskeun")."""
    if not learned:
        return None
    key = phrase_key(text)
    if key in learned:
        return learned[key]
    status = _V.table("status")
    core = " ".join(w for w in key.split() if status.word(w) != "filler")
    return learned.get(core) if core else None


# --- numbered choices ------------------------------------------------------------------------

_CHOICE_PREFIXES = set(
    "no nomor nomer nmr pilih pilihan jawab jawaban opsi option number angka ke".split()
)
_GLUED_CHOICE = re.compile(r"(?:no|nomor|nomer|nmr|pilihan|pilih|opsi)?([0-9])")
# "2 bulan lagi kuliah" tells a duration, not option 2.
_TIME_UNITS = {"bulan", "bln", "minggu", "mgg", "tahun", "thn", "th", "hari", "jam", "kali", "x"}


def _choice(words: list[str]) -> tuple[int, int] | None:
    """The option number a reply starts with ("no 2", "dua", "2️⃣") and where its rest begins."""
    status = _V.table("status")
    i = 0
    while i < len(words) and (words[i] in _CHOICE_PREFIXES or status.word(words[i]) == "filler"):
        i += 1
    if i == len(words):
        return None
    number = _V.numbers.get(words[i])
    if number is None and (glued := _GLUED_CHOICE.fullmatch(words[i])):
        number = int(glued[1])
    if number is None or (i + 1 < len(words) and words[i + 1] in _TIME_UNITS):
        return None
    return number, i + 1


# --- employment status -----------------------------------------------------------------------

_WORK_DENIERS = {"neg", "not_yet", "seek", "want"}  # "belum dapat kerja", "lagi cari kerja"
_DENIERS = {"neg", "not_yet", "want"}  # "belum punya usaha", "pengen kuliah"
# Looking back for a denial stops at a clause end or at another status word:
# in "belum kerja, masih kuliah" the "belum" denies the work, not the studies.
_DENIAL_STOPS = {"already", "breaker", "work", "workplace", "self", "trade", "study", "seek"}
_SKIPPED_BEFORE_DETAIL = {
    "filler", "already", "get", "work", "self", "solo", "lead", "place", "connector"
}  # fmt: skip
_DETAIL_ENDS = {"breaker", "already", "neg", "not_yet", "seek"}
_TRIMMED_AFTER_DETAIL = {"filler", "place", "connector"}


def _resolve_self(concepts: list[str | None]) -> list[str | None]:
    """Mark "kerja sendiri", "jahit sendiri", "self employed" as running one's own business."""
    resolved = list(concepts)
    for i, concept in enumerate(concepts):
        if concept != "solo":
            continue
        before = concepts[i - 1] if i else None
        after = concepts[i + 1] if i + 1 < len(concepts) else None
        if before in {"work", "craft", "lead", "self", "trade"}:
            resolved[i] = "self"
            resolved[i - 1] = {"work": "self", "craft": "trade"}.get(before, before)
        elif after == "work":
            resolved[i] = resolved[i + 1] = "self"
    return resolved


def _denied(concepts: list[str | None], i: int, deniers: set[str]) -> bool:
    """Whether a word within three words before word i denies it ("belum dapat kerja")."""
    seen = 0
    for concept in reversed(concepts[:i]):
        if concept == "filler":
            continue
        if concept in deniers:
            return True
        seen += 1
        if concept in _DENIAL_STOPS or seen == 3:
            return False
    return False


def _next_meaningful(concepts: list[str | None], i: int) -> str | None:
    """Concept of the first non-filler word after word i."""
    return next((c for c in concepts[i + 1 :] if c != "filler"), None)


def _status_from_words(concepts: list[str | None],
                       left: bool = False) -> tuple[str, int, bool] | None:
    """Status the words of a reply tell, the index of the word that tells it, and whether it
    is only an echo of an option ("sudah", "belum": a guess)."""
    first: dict[str, int] = {}
    for i, concept in enumerate(concepts):
        if concept == "work":
            denied = _denied(concepts, i, _WORK_DENIERS)
            denied = denied or _next_meaningful(concepts, i) == "not_yet"  # "kerja? belum"
            first.setdefault(SEEKING if denied else EMPLOYED, i)
        elif concept in {"self", "trade"} and not _denied(concepts, i, _DENIERS):
            first.setdefault(SELF_EMPLOYED, i)
        elif concept == "study" and not _denied(concepts, i, _DENIERS):
            first.setdefault(STUDYING, i)
        elif concept == "seek":
            first.setdefault(SEEKING, i)
        elif concept == "workplace":
            # "sudah keluar dari pabrik": left the job, not working there
            first.setdefault(SEEKING if _denied(concepts, i, {"neg"}) else "workplace", i)
    # A job beats a side business, a business beats studies, and any of them beats job hunting.
    for status in (EMPLOYED, SELF_EMPLOYED, STUDYING, SEEKING):
        if status in first:
            return status, first[status], False
    if "workplace" in first:  # "di pabrik sepatu"
        return EMPLOYED, first["workplace"], False
    # A bare "belum" / "sudah" echoes option 3 "belum bekerja" / option 1 "sudah bekerja".
    meaningful = {concept for concept in concepts if concept != "filler"}
    if "not_yet" in meaningful and meaningful <= {"not_yet", "get"}:
        return SEEKING, 0, True
    if meaningful == {"already"}:
        return EMPLOYED, 0, True
    if meaningful and meaningful <= {"already", "neg"} and left:  # "wis leren", "sudah resign"
        return SEEKING, 0, True
    return None


def _after_place(concepts: list[str | None], start: int) -> int:
    """Index after the first "di" / "at" before the clause ends, or start when there is none."""
    for i in range(start, len(concepts)):
        if concepts[i] in _DETAIL_ENDS:
            break
        if concepts[i] == "place":
            return i + 1
    return start


def _detail(w: _Words, concepts: list[str | None], start: int,
            skip: frozenset[int] = frozenset()) -> str | None:
    """Employer, business or school named from word `start` on, in the sender's own spelling
    (words at the indexes in ``skip``, a job title, are left out at its start)."""
    end = len(concepts)
    while start < end and (concepts[start] in _SKIPPED_BEFORE_DETAIL or start in skip):
        start += 1
    for i in range(start, end):
        gap = w.prepared[w.spans[i - 1][1] : w.spans[i][0]] if i > start else ""
        if concepts[i] in _DETAIL_ENDS or any(mark in gap for mark in ",;!?\n") or \
                i in skip or (i > start and concepts[i] == "lead"):  # "PT X jadi operator"
            end = i
            break
    while end > start and concepts[end - 1] in _TRIMMED_AFTER_DETAIL:
        end -= 1
    if start >= end:
        return None
    detail = w.prepared[w.spans[start][0] : w.spans[end - 1][1]].strip(" .,-")
    return detail if any(ch.isalpha() for ch in detail) else None


def _title_run(words: list[str], start: int = 0) -> tuple[int, int] | None:
    """Where a job title stands in the words ("operator jahit", "bagian finishing"):
    a title word, or "bagian", and the title parts after it."""
    titles, parts = _V.answers["titles"], _V.answers["title_parts"]
    for i in range(start, len(words)):
        word = _squeeze(words[i])
        if (words[i],) in titles or (word,) in titles or words[i] == "bagian":
            end = i + 1
            if words[i] == "bagian":  # "bagian laundry": the next word is the department
                if end == len(words) or _V.table("status").word(words[end]) in (
                        "place", "filler", "connector"):
                    continue
                end += 1
            while end < len(words) and ((words[end],) in parts or (words[end],) in titles):
                end += 1
            return i, end
    return None


def _text_of(w: _Words, start: int, end: int) -> str:
    return w.prepared[w.spans[start][0] : w.spans[end - 1][1]]


def read_status(text: str, learned: Mapping[str, str] | None = None) -> Reading | None:
    """Employment status, plus the employer, business or school (and a job title) when the
    reply names them; None when the reply tells no status."""
    if (meaning := _learned(learned, text)) in STATUSES:
        return Reading(meaning, LEARNED)
    w = _words(text)
    table = _V.table("status")
    concepts = _resolve_self(table.concepts_of(w.words))
    choice = _choice(w.words)
    how = WORDS
    if choice and choice[0] in STATUS_BY_CHOICE:
        status, start, how = STATUS_BY_CHOICE[choice[0]], choice[1], CHOICE
        told = _status_from_words(concepts[start:])
        if told and not told[2] and told[0] != status:
            return None  # "1, belum kerja": the number and the words disagree, so ask
    elif choice:
        return None  # "5", "0": not an option
    elif found := _status_from_words(concepts, left=bool(
            {"keluar", "berhenti"} & set(w.words))):
        status, start, echo = found
        if echo or table.is_typo(w.words[start]):
            how = GUESS
        # A place named first is the better anchor: "di pabrik sepatu, sudah kerja 3 bulan".
        anchor = {EMPLOYED: "workplace", SELF_EMPLOYED: "trade"}.get(status)
        if anchor and anchor in concepts[:start]:
            start = concepts.index(anchor)
    else:
        return None
    if status == SEEKING:
        return Reading(status, how)
    title_at = _title_run(w.words) if status == EMPLOYED else None
    skip = frozenset(range(*title_at)) if title_at else frozenset()
    title = _text_of(w, *title_at) if title_at else None
    if status == EMPLOYED and concepts[start : start + 1] != ["workplace"]:
        # The employer follows "di": in "jadi operator jahit di CV Berkah" the job is not it.
        start = _after_place(concepts, start)
    return Reading(status, how, _detail(w, concepts, start, skip), title)


def parse_status(text: str) -> tuple[str | None, str | None]:
    """Employment status, plus the employer, business or school when the reply names one."""
    reading = read_status(text)
    return (reading.value, reading.detail) if reading else (None, None)


# --- workplace and business ------------------------------------------------------------------

@dataclass(frozen=True)
class Place:
    """A workplace or business as the graduate named it: the name to keep (None when the
    reply names none), a job title apart, and whether the name is specific enough to keep
    (a name-like word, not only "pabrik", "di rumah", laughter or a job title)."""

    name: str | None
    title: str | None
    specific: bool


def _name_like(words: Sequence[str], generic: set[tuple[str, ...]],
               titles_too: bool = True) -> bool:
    """Whether one of the words could be a name: not generic, filler, laughter or (with
    ``titles_too``) a job title."""
    status = _V.table("status")
    plain = {"filler", "place", "connector", "already", "get", "lead", "work", "neg",
             "not_yet", "breaker"}
    laughter, titles = _V.answers["laughter"], _V.answers["titles"]
    for word in words:
        key = _squeeze(word)
        if len(key) < 2 or not any(ch.isalpha() for ch in key):
            continue
        if (word,) in generic or (key,) in generic or (word,) in laughter or (key,) in laughter:
            continue
        if titles_too and ((word,) in titles or (word,) in _V.answers["title_parts"]):
            continue
        if status.word(word) in plain:
            continue
        if re.fullmatch(r"(?:wk|ha|he|hi|xi|kw|aw)+[a-z]?", key):  # "wkwkwk", "hahaha"
            continue
        return True
    return False


def _phrase_in(words: Sequence[str], lists: set[tuple[str, ...]]) -> bool:
    return tuple(words) in lists


def read_place(text: str, *, business: bool = False) -> Place:
    """The workplace (or, with ``business``, the business) a reply names."""
    w = _words(text)
    generic = _V.answers["generic_business" if business else "generic_workplace"]
    title_at = None if business else _title_run(w.words)
    skip = frozenset(range(*title_at)) if title_at else frozenset()
    title = _text_of(w, *title_at) if title_at else None
    rest = [word for i, word in enumerate(w.words) if i not in skip]
    if _phrase_in(rest, generic) or not _name_like(rest, generic, titles_too=not business):
        return Place(None, title, False)
    concepts = _V.table("status").concepts_of(w.words)
    if title_at is None:
        name = _place_span(w, concepts, 0, len(w.words))
    else:  # the workplace after the title ("operator jahit di PT X") or before it
        after = _place_span(w, concepts, title_at[1], len(w.words))
        before = _place_span(w, concepts, 0, title_at[0])
        name = next((part for part in (after, before)
                     if part and _name_like(words_of(part), generic)), None)
    return Place(name or " ".join(text.split()).strip(" .,-"), title, True)


_PLACE_LEADS = {"filler", "already", "get", "work", "lead", "place", "connector", "solo"}
_PLACE_TAILS = {"filler", "place", "connector"}


def _place_span(w: _Words, concepts: list[str | None], start: int, end: int) -> str | None:
    """The words from ``start`` to ``end`` as typed, without leading "sudah kerja di" or
    trailing filler; the rest of the reply is kept ("konveksi Bu Siti, Wiradesa")."""
    while start < end and concepts[start] in _PLACE_LEADS:
        start += 1
    for i in range(start + 1, end):  # "toko Barokah jd pramuniaga": not the job
        if concepts[i] == "lead":
            end = i
            break
    while end > start and concepts[end - 1] in _PLACE_TAILS:
        end -= 1
    if start >= end:
        return None
    return _text_of(w, start, end).strip(" .,-") or None


# --- yes / no --------------------------------------------------------------------------------

_YES_EMOJI = "👍👌✅✔🙆"
_NO_EMOJI = "👎❌✖🙅⛔"


def _yes_no_from_words(words: list[str]) -> tuple[bool | None, bool]:
    """Yes or no in words, and whether a typo-tolerant match told it; (None, _) when the
    words say neither, are unsure, or say both ("iya, tapi ga nyambung": ask)."""
    choice = _choice(words)
    if choice and choice[0] in (1, 2):  # asked as "1 = ya, 2 = tidak"
        return choice[0] == 1, False
    table = _V.table("yes_no")
    concepts = table.concepts_of(words)
    if "unsure" in concepts:  # "gak tau", "mungkin", "hmm gmn ya"
        return None, False
    answers: list[bool] = []
    typo = False
    i = 0
    while i < len(concepts):
        concept = concepts[i]
        after = concepts[i + 1] if i + 1 < len(concepts) else None
        if concept in ("yes", "no"):
            typo = typo or table.is_typo(words[i])
        if concept == "no":
            if after == "fine":  # "gak papa", "tidak masalah": it is fine
                answers.append(True)
                i += 2
                continue
            if after == "yes":  # "tidak pakai", "ora kanggo"
                answers.append(False)
                i += 2
                continue
            answers.append(False)
        elif concept == "yes":
            if after == "no":  # "ya gak", "iya tidak terpakai" end in no
                answers.append(False)
                i += 2
                continue
            answers.append(True)
        i += 1
    if not answers:
        return None, False
    # A leading "ya"/"iya" followed by a no-word's clause is the no: "iya kak, beda bidang"
    # reads as an acknowledgement, not as a conflict.
    if len(set(answers)) > 1:
        first_yes = words[concepts.index("yes")] if "yes" in concepts else ""
        if answers[0] is True and first_yes in ("ya", "iya", "iye", "y", "ok", "oke") and \
                set(answers[1:]) == {False}:
            return False, typo
        return None, False
    return answers[0], typo


def read_yes_no(text: str, learned: Mapping[str, str] | None = None) -> Reading | None:
    """Yes (True) or no (False); None when the reply says neither, is unsure, or says both."""
    if (meaning := _learned(learned, text)) in ("yes", "no"):
        return Reading(meaning == "yes", LEARNED)
    prepared = _prepare(text)
    answers: set[bool] = set()
    if any(emoji in prepared for emoji in _YES_EMOJI):
        answers.add(True)
    if any(emoji in prepared for emoji in _NO_EMOJI):
        answers.add(False)
    words = words_of(prepared)
    in_words, typo = _yes_no_from_words(words)
    if in_words is None and words and "unsure" in _V.table("yes_no").concepts_of(words):
        return None
    if in_words is not None:
        answers.add(in_words)
    if len(answers) != 1:
        return None
    choice = _choice(words)
    how = CHOICE if choice and choice[0] in (1, 2) else GUESS if typo else WORDS
    return Reading(answers.pop(), how)


_CLAUSE = re.compile(r"[,;.\n!?]+|\b(?:tapi|tp|tetapi|namun|nanging|ning|and|dan)\b",
                     re.IGNORECASE)
_SKILL_CONTEXT = {"sesuai", "nyambung", "kepake", "kepakai", "pakai", "pake", "dipakai",
                  "terpakai", "ilmu", "ilmunya", "jurusan", "jurusane", "bidang", "pelatihan",
                  "pelatihane", "keterampilan", "ketrampilan", "skill", "linier", "linear",
                  "relevan", "kanggo", "kangge", "dienggo", "dingge", "sebidang", "berguna",
                  "manfaat", "bermanfaat"}


_ALERTS_CONTEXT = {"lowongan", "loker", "info", "informasi", "kabar", "kabari", "dikabari",
                   "kirim", "kirimi", "kirimin", "dikirim", "dikirimi", "kirimono", "kirimke",
                   "dikirimke", "lowongane"}


def read_skill_use_aside(text: str) -> Reading | None:
    """Whether the job uses the trained skill, said beside the status in the same message
    ("kerja di garmen, tp ga sesuai jurusan"); None when the rest of the message does not
    say it clearly."""
    return _aside(text, _SKILL_CONTEXT)


def read_job_alerts_aside(text: str) -> Reading | None:
    """Whether a job seeker wants job openings, said beside the status ("blm kerja kak, mau
    dikirimi info loker"); None when the rest of the message does not say it clearly."""
    return _aside(text, _ALERTS_CONTEXT)


def _aside(text: str, context: set[str]) -> Reading | None:
    clauses = [c for c in _CLAUSE.split(_prepare(text)) if c and c.strip()]
    for clause in clauses[1:]:
        words = words_of(clause)
        if not any(_squeeze(word) in context or word in context for word in words):
            continue
        reading = read_yes_no(clause)
        if reading is not None and reading.how != CHOICE:
            return reading
    return None


def parse_yes_no(text: str) -> bool | None:
    """True for yes, False for no, None when the reply says neither (or both)."""
    reading = read_yes_no(text)
    return reading.value if reading else None


# --- skill rating ----------------------------------------------------------------------------

_HEADS = {"great", "good", "able", "fair", "weak", "bad", "learning"}
_RATING_BY_WORDS = {  # (modifier, head) -> rating; "" when unmodified
    ("", "great"): 5, ("", "good"): 4, ("", "able"): 3, ("", "fair"): 3,
    ("", "weak"): 2, ("", "learning"): 2, ("", "bad"): 1,
    ("intense", "great"): 5, ("intense", "good"): 5, ("intense", "able"): 4,
    ("intense", "fair"): 3, ("intense", "weak"): 1, ("intense", "bad"): 1,
    ("neg", "great"): 3, ("neg", "good"): 2, ("neg", "able"): 1, ("neg", "fair"): 2,
    ("neg", "bad"): 3,
    ("fair", "great"): 4, ("fair", "good"): 3, ("fair", "able"): 3,
    ("weak", "great"): 3, ("weak", "good"): 2, ("weak", "able"): 2,
}  # fmt: skip
_OUT_OF_FIVE = re.compile(r"(\d+)\s*(?:/|dari|of|out of)\s*5\b")
_DECIMAL = re.compile(r"\d[.,]\d")
_RANGE = re.compile(r"\d\s*(?:-|–|sampai|sampe|atau|ato|/)\s*\d")
_STARS = "⭐★🌟"


def _in_range(rating: int) -> int | None:
    """The rating when it is on the 1-5 scale."""
    return rating if 1 <= rating <= 5 else None


def _rating_from_words(concepts: list[str | None]) -> int | None:
    """Rating told in words: "lumayan" 3, "bagus sekali" 5, "belum bisa" 1."""
    known = [concept for concept in concepts if concept]
    head_at = next((i for i, concept in enumerate(known) if concept in _HEADS), None)
    if head_at is None:
        return None
    head = known[head_at]
    before = known[head_at - 1] if head_at else ""
    after = known[head_at + 1] if head_at + 1 < len(known) else ""
    modifier = ""
    if head in {"fair", "weak"} and after in {"great", "good", "able"}:  # "kurang bisa"
        modifier, head = head, after
    elif before in {"neg", "intense"}:  # "belum bisa", "sangat kurang"
        modifier = before
    elif after in {"intense", "weak"}:  # "bagus sekali", "bisa sedikit"
        modifier = after
    return _RATING_BY_WORDS.get((modifier, head))


def read_rating(text: str, learned: Mapping[str, str] | None = None) -> Reading | None:
    """Skill self-rating 1-5 from digits, number words, stars or words; None otherwise."""
    if (meaning := _learned(learned, text)) and meaning.isdigit() and _in_range(int(meaning)):
        return Reading(int(meaning), LEARNED)
    prepared = _prepare(text)
    if out_of_five := (_OUT_OF_FIVE.search(prepared.lower()) or
                       _OUT_OF_FIVE.search(" ".join(words_of(prepared)))):
        rating = _in_range(int(out_of_five[1]))
        return Reading(rating, CHOICE) if rating else None
    if _DECIMAL.search(prepared) or _RANGE.search(prepared):  # "3,5", "3-4": between two
        return None
    words = words_of(prepared)
    numbers = {int(word) for word in words if word.isdigit()}
    numbers |= {_V.numbers[word] for word in words if word in _V.numbers}
    if numbers:
        rating = _in_range(numbers.pop()) if len(numbers) == 1 else None
        return Reading(rating, CHOICE) if rating else None
    if stars := sum(prepared.count(star) for star in _STARS):
        rating = _in_range(stars)
        return Reading(rating, CHOICE) if rating else None
    table = _V.table("rating")
    rating = _rating_from_words(table.concepts_of(words))
    if rating is None:
        return None
    return Reading(rating, GUESS if any(table.is_typo(word) for word in words) else WORDS)


def parse_rating(text: str) -> int | None:
    """Skill self-rating 1-5 from digits, number words, stars or words; None otherwise."""
    reading = read_rating(text)
    return reading.value if reading else None


# --- "any obstacle or help needed?" ----------------------------------------------------------

_NOTHING_SYMBOLS = "-–—.👍👌✅"


def means_nothing(text: str, learned: Mapping[str, str] | None = None) -> bool:
    """Whether a reply to "any obstacle or help needed?" says there is none.

    No typo tolerance here: an unknown word may describe a need, and a need must not be lost.
    """
    if _learned(learned, text) == "nothing":
        return True
    words = words_of(text)
    if not words:
        return any(symbol in _prepare(text) for symbol in _NOTHING_SYMBOLS)
    table = _V.table("nothing")
    concepts = [table.concepts.get((_squeeze(w),)) for w in words]
    phrased = table.concepts_of(words)  # phrases ("aman terkendali") count as a whole
    concepts = [c or p for c, p in zip(concepts, phrased, strict=True)]
    return None not in concepts and "nothing" in concepts


# --- greetings, laughter and nonsense --------------------------------------------------------

def is_unsure(text: str) -> bool:
    """A question back or a shrug ("hmm gmn ya", "entahlah", "maksudnya?"): no answer."""
    words = words_of(text)
    concepts = _V.table("yes_no").concepts_of(words)
    status = _V.table("status")
    return "unsure" in concepts and all(
        c in ("unsure", "yes", "fine") or status.word(word) == "filler" or
        (word,) in _V.answers["greetings"] or (word,) in _V.answers["laughter"]
        for word, c in zip(words, concepts, strict=True))


def is_nonsense(text: str) -> bool:
    """Laughter, a greeting, emoji or a lone letter: nothing to keep as an answer."""
    words = [w for w in words_of(text) if len(_squeeze(w)) > 1]
    return not words or is_greeting(text) or all(
        (w,) in _V.answers["laughter"] or re.fullmatch(r"(?:wk|ha|he|hi|xi|kw|aw)+[a-z]?",
                                                      _squeeze(w)) for w in words)


def is_ping(text: str) -> bool:
    """Only a greeting or a ping ("p", "tes", "halo kak"), no laughter: nobody answered yet."""
    words = words_of(text)
    return bool(words) and (tuple(words) in _V.answers["greetings"] or all(
        (w,) in _V.answers["greetings"] for w in words))


def is_greeting(text: str) -> bool:
    """A ping or a greeting ("p", "halo kak", "assalamualaikum"): not an answer to anything,
    the question is asked again."""
    words = words_of(text)
    if not words:
        return bool(text.strip()) and set(_prepare(text).strip()) <= set("?!. ")
    return tuple(words) in _V.answers["greetings"] or all(
        (w,) in _V.answers["greetings"] or (w,) in _V.answers["laughter"] for w in words)


# --- job interest ----------------------------------------------------------------------------

_INTEREST_WORDS = {"minat", "berminat", "peminat", "tertarik", "daftar", "mendaftar", "ndaftar",
                   "melamar", "lamar", "interested", "apply"}
_INTEREST_SOFT = {"mau", "ingin", "pengen", "pingin", "ikut", "boleh", "siap", "iya", "ya"}
_CODE_TOKEN = re.compile(r"[A-Za-z0-9]{3,16}")


@dataclass(frozen=True)
class Interest:
    """A message that may answer a job opening: its tokens that could be the code (looked
    up against the openings), those that are no word Kabar knows (a code as typed, for "not
    found"), whether it says "minat" (or the like) outright, and whether it only says
    "mau"/"iya" (which means interest only right after an opening)."""

    codes: tuple[str, ...]
    typed_codes: tuple[str, ...]
    says_interest: bool
    soft: bool


def _known_word(word: str) -> bool:
    return word in _INTEREST_WORDS or word in _INTEREST_SOFT or any(
        table.word(word) is not None for table in _V.tables.values())


def read_interest(text: str) -> Interest:
    words = words_of(text)
    tokens = [token for token in _CODE_TOKEN.findall(_prepare(text).replace("#", " "))]
    codes = tuple(dict.fromkeys(token.upper() for token in tokens))
    typed = tuple(dict.fromkeys(
        token.upper() for token in tokens
        if any(ch.isdigit() for ch in token) or not _known_word(_squeeze(token.lower()))))
    says = any(word in _INTEREST_WORDS for word in words)
    soft = not says and bool(words) and all(
        word in _INTEREST_SOFT or _V.table("status").word(word) == "filler" for word in words)
    return Interest(codes, typed, says, soft)


# --- keywords --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keyword:
    """A command a graduate or staff member typed; argument is "" when there is none."""

    name: str
    argument: str


_CODE_KEYWORDS = {"interest", "join"}
_TEXT_KEYWORDS = {"broadcast", "summary"}
_EDGE_MARKS = re.compile(r"^[\W_]+|[\W_]+$")  # "*STOP*", "Stop.", "stop 🙏"


def parse_keyword(text: str) -> Keyword | None:
    """The command a whole message consists of, or None when the message is not a command.

    MINAT keeps the rest of the message as typed ("MINAT J9UJ3 ya kak"): the code is found in
    it against the open job openings."""
    text = unicodedata.normalize("NFKC", text or "").strip()
    core = _EDGE_MARKS.sub("", text)
    bare = re.sub(r"[\s\-_]+", "", core).upper()  # "check in", "CHECK-IN"
    command = _V.keywords.get(bare)
    if command is not None and command not in _CODE_KEYWORDS | _TEXT_KEYWORDS:
        return Keyword(command, "")
    first, rest = (core.split(maxsplit=1) + ["", ""])[:2]
    command = _V.keywords.get(_EDGE_MARKS.sub("", first).upper())  # "MINAT: AB12"
    if command == "interest":
        return Keyword(command, " ".join(rest.split()))
    if command == "join":
        return Keyword(command, re.sub(r"\s+", "", rest).upper())
    if command in _TEXT_KEYWORDS:
        # Broadcast and summary text is kept as typed, trailing punctuation included.
        return Keyword(command, re.sub(r"^\S+\s*", "", text, count=1).strip())
    return None
