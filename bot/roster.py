"""Roster import: graduates from a CSV or XLSX file, Indonesian or English headers.

``parse_roster`` only reads and checks the file; ``bot.roster_plan`` compares it with the
database (the preview) and applies that; ``import_roster`` does both: it writes institutions,
cohorts and graduates, matched by phone, so importing the same file twice changes nothing.
Bad rows are reported by file line (the header is line 1) with a reason that says how to fix
them; the good rows are imported anyway.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy.orm import Session

from bot.phones import PhoneError, normalize_phone

# field -> accepted headers (compared lower-case without spaces, underscores, dots or dashes)
HEADERS: dict[str, tuple[str, ...]] = {
    "institution": ("lpks", "institution", "lembaga"),
    "cohort": ("paket", "cohort", "kelas"),
    "name": ("nama", "name"),
    "phone": ("no_wa", "whatsapp", "phone", "no_hp", "hp", "nomor"),
    "skill": ("keterampilan", "skill"),
    "language": ("bahasa", "language"),
    # The cohort's training dates (dd/mm/yyyy), for the tracer report (bot.tracer).
    "training_start": ("mulai_pelatihan", "training_start"),
    "training_end": ("selesai_pelatihan", "training_end"),
}
# A few more spellings seen in real rosters; not advertised, just understood.
_EXTRA = {"institution": ("namalpks", "namalembaga"), "cohort": ("namapaket",),
          "name": ("namalengkap", "namapeserta", "fullname"),
          "phone": ("nowhatsapp", "nomorwa", "nomorhp", "wa", "telepon", "telp", "mobile"),
          "skill": ("kejuruan",)}
REQUIRED = ("institution", "cohort", "name", "phone")
_LANGUAGES = {"id": "id", "indonesia": "id", "bahasaindonesia": "id", "ind": "id",
              "en": "en", "english": "en", "inggris": "en", "bahasainggris": "en", "eng": "en"}
Records = Generator[tuple[int, list[Any]], None, None]  # (file line, cells)


class RosterError(Exception):
    """The file as a whole cannot be used (unreadable, unknown format, a column missing)."""


@dataclass(frozen=True)
class ImportProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(slots=True)  # not frozen: building 100,000 frozen ones costs 0.3 s
class RosterRow:
    line: int
    institution: str
    cohort: str
    name: str
    phone: str  # E.164
    skill: str | None = None
    language: str | None = None  # None: not given (new graduates get the default)
    training_start: date | None = None  # the cohort's; None: not given
    training_end: date | None = None


@dataclass
class ImportReport:
    file: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[ImportProblem] = field(default_factory=list)
    institutions_created: int = 0
    cohorts_created: int = 0

    @property
    def rejected_total(self) -> int:
        """Rejected rows in all (``rejected`` may list only the first of them)."""
        return getattr(self.rejected, "total", len(self.rejected))

    def summary(self) -> str:
        return (f"{self.file}: {self.created} created, {self.updated} updated, "
                f"{self.unchanged} unchanged, {self.rejected_total} rejected")


def _key(header: Any) -> str:
    return re.sub(r"[\s_.\-/]+", "", str(header or "")).lower()


_LOOKUP = {_key(h): f for f, names in HEADERS.items() for h in names + _EXTRA.get(f, ())}


_FLOAT_TEXT = re.compile(r"\d+\.0+")
_SPACES = re.compile(r"\s+")


def _text(value: Any) -> str:
    """A cell as clean text; 6281234567890.0 (Excel's float) becomes '6281234567890'."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).replace("\u00a0", " ").strip()
    if text.endswith("0") and _FLOAT_TEXT.fullmatch(text):
        text = text.split(".")[0]
    # Only a double space or a tab, newline or other Unicode space needs collapsing
    # (``isprintable`` is False for all of those); most cells have none.
    if "  " in text or not text.isprintable():
        text = _SPACES.sub(" ", text)
    return text


# --- reading ------------------------------------------------------------------------------

def _read_rows(path: Path, limits=None) -> Records:
    """The file's rows, within the ``[roster]`` limits (``bot.rosterfile``)."""
    from bot.rosterfile import read_records

    return read_records(path, limits)


def _map_header(path: Path, header: list[Any]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        found = _LOOKUP.get(_key(cell))
        if found and found not in columns:
            columns[found] = index
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        seen = ", ".join(_text(h) for h in header if _text(h)) or "none"
        wanted = "; ".join(f"{HEADERS[f][0]} (accepted: {', '.join(HEADERS[f])})"
                           for f in missing)
        raise RosterError(f"{path.name}: missing column {wanted}. Headers found: {seen}")
    return columns


# --- parsing ------------------------------------------------------------------------------

def parse_roster(path: Path, limits=None) -> tuple[list[RosterRow], list[ImportProblem]]:
    """Read and check a roster file without touching the database.

    The problems are the first ``limits.max_problems_shown`` (a ``ProblemList`` whose
    ``total`` counts them all), so a file of bad rows cannot make a huge report.
    """
    from bot.rosterfile import ReadLimits, cap_problems

    path = Path(path)
    limits = limits or ReadLimits()
    records = _read_rows(path, limits)
    try:
        rows, problems = _parse(path, records)
    finally:
        records.close()
    return rows, cap_problems(problems, limits.max_problems_shown)


def _parse(path: Path, records: Records) -> tuple[list[RosterRow], list[ImportProblem]]:
    columns: dict[str, int] | None = None
    header_error: RosterError | None = None
    rows: list[RosterRow] = []
    problems: list[ImportProblem] = []
    by_phone: dict[str, RosterRow] = {}
    skipped = 0
    for line, record in records:
        if columns is None:
            if not any(_text(v) for v in record):
                continue
            # The header is the first non-empty row; a title row or two above it is tolerated.
            try:
                columns = _map_header(path, record)
            except RosterError as exc:
                header_error = header_error or exc
                skipped += 1
                if skipped >= 5:
                    raise header_error from None
            continue
        # Only the columns Kabar reads are cleaned; the others matter only to tell a blank row.
        width = len(record)
        values = {f: (_text(record[i]) if i < width else "") for f, i in columns.items()}
        if not any(values.values()) and not any(_text(v) for v in record):
            continue
        row = _check_row(line, values, problems)
        if row is None:
            continue
        earlier = by_phone.get(row.phone)
        if earlier is None:
            by_phone[row.phone] = row
            rows.append(row)
        elif _same(earlier, row):
            continue  # the same graduate listed twice: harmless
        else:
            problems.append(ImportProblem(line, (
                f"number {row.phone} is already on line {earlier.line} with different data "
                f"({earlier.name}, {earlier.cohort}); keep one row per graduate")))
    if columns is None:
        raise header_error or RosterError(f"{path.name}: the file is empty (no header row)")
    return rows, problems


def _same(a: RosterRow, b: RosterRow) -> bool:
    fields_ = ("institution", "cohort", "name", "skill", "language")
    return all(str(getattr(a, f) or "").casefold() == str(getattr(b, f) or "").casefold()
               for f in fields_)


def _check_row(line: int, v: dict[str, str], problems: list[ImportProblem]) -> RosterRow | None:
    def reject(reason: str) -> None:
        problems.append(ImportProblem(line, reason))

    if not v["name"]:
        return reject("nama (name) is empty; fill in the graduate's name")
    if not v["institution"]:
        return reject("lpks (institution) is empty; fill in the training institution")
    if not v["cohort"]:
        return reject("paket (cohort) is empty; fill in the training package, e.g. Menjahit 3")
    raw_phone = v["phone"].lstrip("'")
    if not raw_phone:
        return reject("no_wa (WhatsApp number) is empty; fill in a number like 0812-3456-7890")
    if _SHORTENED.search(raw_phone):
        return reject(f"no_wa {raw_phone!r} was shortened by Excel; format the column as Text, "
                      "type the full number (e.g. 0812-3456-7890) and export again")
    try:
        phone = _indonesian_phone(raw_phone) or normalize_phone(raw_phone)
    except PhoneError:
        return reject(f"no_wa {raw_phone!r} is not a valid WhatsApp number; "
                      "write it like 0812-3456-7890 or +62 812-3456-7890")
    language = None
    if v.get("language"):
        language = _LANGUAGES.get(_key(v["language"]))
        if language is None:
            return reject(f"bahasa {v['language']!r} is not known; write id or en")
    dates: dict[str, date | None] = {}
    for key, header in (("training_start", "mulai_pelatihan"),
                        ("training_end", "selesai_pelatihan")) \
            if v.get("training_start") or v.get("training_end") else ():
        try:
            dates[key] = _training_date(v.get(key) or "")
        except ValueError:
            return reject(f"{header} {v[key]!r} is not a date; write it as dd/mm/yyyy, "
                          "e.g. 31/01/2025")
    if dates.get("training_start") and dates.get("training_end") \
            and dates["training_end"] < dates["training_start"]:
        return reject(f"selesai_pelatihan {v['training_end']!r} is before mulai_pelatihan "
                      f"{v['training_start']!r}; check the two dates")
    return RosterRow(line=line, institution=v["institution"], cohort=v["cohort"],
                     name=v["name"], phone=phone, skill=v.get("skill") or None,
                     language=language, **dates)


_SHORTENED = re.compile(r"\d[.,]\d*E\+?\d+$", re.IGNORECASE)  # 6.28123E+12
_SEPARATORS = str.maketrans("", "", " -.()/")
_NUMBERS = threading.local()  # one reused PhoneNumber per thread: building one costs too


def _indonesian_phone(raw: str) -> str | None:
    """The E.164 form of a plainly written Indonesian number (0812…, 62812…, +62 812…,
    812…), checked by ``phonenumbers`` like ``normalize_phone`` does, without parsing the
    text (five times faster, which matters for 100,000 rows). None for anything else (a
    foreign number, letters, an invalid number): ``normalize_phone`` then decides, and
    words its error."""
    digits = raw.translate(_SEPARATORS)
    plus = digits.startswith("+")
    if plus:
        digits = digits[1:]
    if not digits.isdigit() or not digits.isascii():
        return None
    if digits.startswith("62"):
        national = digits[2:]
    elif plus:
        return None
    elif digits.startswith("0"):
        national = digits[1:]
    elif digits.startswith("8"):
        national = digits
    else:
        return None
    if not national or national[0] == "0" or len(national) > 14:
        return None
    number = getattr(_NUMBERS, "number", None)
    if number is None:
        number = _NUMBERS.number = phonenumbers.PhoneNumber(country_code=62)
    number.national_number = int(national)
    # +62 is Indonesia's alone: what ``is_valid_number`` checks, without looking that up.
    if not phonenumbers.is_valid_number_for_region(number, "ID"):
        return None
    return "+62" + national


def _training_date(text: str) -> date | None:
    """dd/mm/yyyy as typed (also dd-mm-yyyy, dd.mm.yyyy), or an Excel date cell (which
    arrives as '2025-01-31 00:00:00'); None when empty."""
    from bot.staff.formats import parse_date

    if not text:
        return None
    return parse_date(text.removesuffix(" 00:00:00"))


# --- importing ----------------------------------------------------------------------------

def import_roster(session: Session, path: Path, *, actor: str = "cli",
                  progress: Callable[[int, int], Any] | None = None, limits=None,
                  allow_erased: bool = False) -> ImportReport:
    """Create or update institutions, cohorts and graduates from ``path`` (caller commits).

    The same as previewing with ``bot.roster_plan.plan_roster`` and applying that plan. A
    number whose graduate was erased on request is refused (a problem on its line) unless
    ``allow_erased``. ``progress(rows_done, rows_total)`` follows the writing.
    """
    from bot.roster_plan import apply_plan, plan_roster

    plan = plan_roster(session, path, limits=limits, allow_erased=allow_erased)
    return apply_plan(session, plan, actor=actor, progress=progress)

