"""Reading a roster file into rows, safely: a hostile or broken file is refused quickly.

An 8 MB upload can still hide gigabytes: an XLSX is a zip of XML, so a few megabytes may
unpack to millions of empty rows or a shared-strings table of 2 GB, and a CSV may hold millions
of lines. This module turns a CSV or XLSX file into ``(file line, cells)`` records and enforces
the ``[roster]`` limits while it reads:

- an XLSX's zip members are checked before openpyxl opens it: the sizes they declare (which
  bound what ``zipfile`` will unpack) must add up to at most ``max_unzipped_mb``, no XML
  part may carry a DTD (``<!DOCTYPE``/``<!ENTITY``: entity expansion is the classic XML bomb),
  and no sheet may hold more than ``max_rows`` rows (counted in its bytes, which is quick);
- the sheet is read by openpyxl in read-only (streaming) mode; cells beyond ``max_columns``
  are dropped;
- at most ``max_rows`` rows are read (blank ones included); a longer file is refused whole,
  so nobody imports half a roster without noticing;
- a cell longer than ``max_cell_chars`` is cut (no real name or number comes near it);
- a CSV's encoding is recognised: UTF-8 with or without a byte order mark, UTF-16 (with a mark,
  or without one, as some spreadsheet programs save "Unicode text"), else Windows-1252;
- a zip that is not named ``.xlsx`` is refused with a message saying so, rather than guessed.

Every refusal is a ``RosterError`` naming the file and what to do.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.roster import RosterError

Records = Generator[tuple[int, list[Any]], None, None]  # (file line, cells)
XLSX_SUFFIXES = (".xlsx", ".xlsm")
TEXT_SUFFIXES = (".csv", ".txt")
_DTD_MARKERS = (b"<!DOCTYPE", b"<!ENTITY", b"<!doctype", b"<!entity")
_PROLOG_BYTES = 64 * 1024  # a DTD can only come before the root element


@dataclass(frozen=True)
class ReadLimits:
    """The ``[roster]`` settings that bound what a roster file may cost to read."""

    max_rows: int = 50_000
    max_columns: int = 60
    max_cell_chars: int = 1_000
    max_unzipped_mb: int = 50
    max_problems_shown: int = 200

    @classmethod
    def from_settings(cls, settings) -> ReadLimits:
        roster = getattr(settings, "roster", None)
        if roster is None:
            return cls()
        return cls(max_rows=roster.max_rows, max_columns=roster.max_columns,
                   max_cell_chars=roster.max_cell_chars,
                   max_unzipped_mb=roster.max_unzipped_mb,
                   max_problems_shown=roster.max_problems_shown)

    @property
    def max_bytes(self) -> int:
        return self.max_unzipped_mb * 1024 * 1024


class ProblemList(list):
    """The first problems of a report, and ``total``: how many there were in all."""

    total: int = 0

    @property
    def hidden(self) -> int:
        return self.total - len(self)


def cap_problems(problems: list, limit: int) -> ProblemList:
    """Keep the first ``limit`` problems; ``total`` remembers how many there were."""
    capped = ProblemList(problems[:limit])
    capped.total = len(problems)
    return capped


def read_records(path: Path, limits: ReadLimits | None = None) -> Records:
    """The file's rows as ``(line, cells)``; raises RosterError when it cannot or may not."""
    limits = limits or ReadLimits()
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
        size = path.stat().st_size
    except OSError as exc:
        raise RosterError(f"{path.name}: cannot read the file ({exc.strerror or exc})") from None
    if suffix == ".xls" or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise RosterError(f"{path.name}: old Excel .xls files are not supported; "
                          "save it as .xlsx or CSV and import that")
    is_zip = head.startswith(b"PK\x03\x04")
    if suffix in XLSX_SUFFIXES:
        return _limited(path, _read_xlsx(path, limits), limits)
    if is_zip:
        raise RosterError(f"{path.name}: this is a zip file (an Excel workbook is one) but its "
                          "name does not end in .xlsx; save it from Excel as .xlsx, or rename "
                          "it to .xlsx if it is one")
    if suffix in TEXT_SUFFIXES:
        if size > limits.max_bytes:
            raise RosterError(f"{path.name}: the file is larger than {limits.max_unzipped_mb} "
                              "MB; split it into smaller files")
        return _limited(path, _read_csv(path, limits), limits)
    raise RosterError(f"{path.name}: unknown file format {suffix or '(no extension)'!r}; "
                      "use a .csv or .xlsx file")


def _limited(path: Path, records: Records, limits: ReadLimits) -> Records:
    """Stop at ``max_rows`` rows; cut wide rows and long cells."""
    longest = limits.max_cell_chars
    try:
        for count, (line, cells) in enumerate(records, start=1):
            if count > limits.max_rows + 1:  # the header does not count
                raise RosterError(
                    f"{path.name}: more than {limits.max_rows:,} rows (blank rows count too); "
                    "split the file, or delete the empty rows below the list")
            if len(cells) > limits.max_columns:
                cells = cells[:limits.max_columns]
            try:  # text cells that are short even all together (a CSV row): nothing to cut
                short = len("".join(cells)) <= longest
            except TypeError:  # numbers or empty cells (XLSX)
                short = False
            yield line, cells if short else [
                _cut(cell, longest) if isinstance(cell, str) else cell for cell in cells]
    finally:
        records.close()


def _cut(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit]
    return value


# --- CSV ----------------------------------------------------------------------------------

def decode(data: bytes) -> tuple[str, str]:
    """Bytes of a text file -> (text, encoding name): UTF-8 (BOM or not), UTF-16, CP1252."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace"), "UTF-8"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), "UTF-16"
    sample = data[:4096]
    if len(sample) >= 4 and sample.count(0) >= len(sample) // 4:
        # UTF-16 without a byte order mark: the zero bytes sit on one side of each pair.
        little = sample[1::2].count(0) >= sample[0::2].count(0)
        encoding = "utf-16-le" if little else "utf-16-be"
        return data.decode(encoding, errors="replace"), encoding.upper()
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "Windows-1252"


def _read_csv(path: Path, limits: ReadLimits) -> Records:
    text, _encoding = decode(path.read_bytes())
    text = text.replace("\x00", "")
    first = next((ln for ln in io.StringIO(text) if ln.strip()), "")
    delimiter = max((";", ",", "\t"), key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for record in reader:
            yield start, record
            start = reader.line_num + 1
    except csv.Error as exc:
        raise RosterError(f"{path.name}: line {start} cannot be read as CSV ({exc}); "
                          "save the file again from the spreadsheet as CSV") from None


# --- XLSX ---------------------------------------------------------------------------------

def check_xlsx_zip(path: Path, limits: ReadLimits) -> None:
    """Refuse a workbook whose parts unpack beyond the limit or carry a DTD, before opening."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise RosterError(f"{path.name}: not a readable XLSX file ({exc}); save it again from "
                          "Excel as .xlsx") from None
    with archive:
        members = archive.infolist()
        names = {m.filename for m in members}
        if "xl/workbook.xml" not in names:
            raise RosterError(f"{path.name}: this zip file is not an Excel workbook "
                              "(no xl/workbook.xml); save the roster from Excel as .xlsx")
        unpacked = sum(m.file_size for m in members)
        if unpacked > limits.max_bytes:
            raise RosterError(
                f"{path.name}: the workbook unpacks to {unpacked / 1024 / 1024:,.0f} MB, more "
                f"than the {limits.max_unzipped_mb} MB allowed; delete empty rows and "
                "formatting, or save the roster as CSV")
        for member in members:
            if not member.filename.endswith((".xml", ".rels")):
                continue
            try:
                with archive.open(member) as part:
                    prolog = part.read(_PROLOG_BYTES)
            except (zipfile.BadZipFile, OSError, NotImplementedError, EOFError) as exc:
                raise RosterError(f"{path.name}: part {member.filename} cannot be read "
                                  f"({exc}); save the file again from Excel") from None
            root = _root_start(prolog)
            if any(marker in prolog[:root] for marker in _DTD_MARKERS):
                raise RosterError(f"{path.name}: part {member.filename} declares a DTD or XML "
                                  "entities, which Kabar does not accept; save the roster "
                                  "again from Excel or as CSV")
            if member.filename.startswith("xl/worksheets/"):
                rows = _count_rows(archive, member)
                if rows > limits.max_rows + 1:
                    raise RosterError(
                        f"{path.name}: {member.filename} has {rows:,} rows, more than "
                        f"{limits.max_rows:,} (blank rows count too); split the file, or "
                        "delete the empty rows below the list")


def _count_rows(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> int:
    """How many ``<row`` elements a sheet part holds, counted in its bytes (no XML parsing:
    about 50 times faster than openpyxl, so a sheet of too many rows is refused at once)."""
    count, tail = 0, b""
    with archive.open(member) as part:
        while chunk := part.read(1 << 20):
            data = tail + chunk
            count += sum(data.count(b"<row" + end) for end in (b" ", b">", b"/"))
            count += sum(data.count(b":row" + end) for end in (b" ", b">", b"/"))
            tail = data[-5:]
            count -= sum(tail.count(b"<row" + end) + tail.count(b":row" + end)
                         for end in (b" ", b">", b"/"))
    return count


def _root_start(prolog: bytes) -> int:
    """Where the root element starts (the first '<' not opening '<?' or '<!')."""
    at = 0
    while True:
        at = prolog.find(b"<", at)
        if at < 0 or at + 1 >= len(prolog):
            return len(prolog)
        if prolog[at + 1:at + 2] not in (b"?", b"!"):
            return at
        at += 1


def _read_xlsx(path: Path, limits: ReadLimits) -> Records:
    check_xlsx_zip(path, limits)
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on broken parts; none is a 500
        raise RosterError(f"{path.name}: not a readable XLSX file ({type(exc).__name__}: "
                          f"{exc}); save it again from Excel as .xlsx") from None
    try:
        if not workbook.worksheets:
            raise RosterError(f"{path.name}: the workbook has no sheet")
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # some writers store wrong sheet sizes
        try:
            # No max_col here: openpyxl would pad every row to it; wide rows are cut after.
            for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield number, list(row)
        except RosterError:
            raise
        except Exception as exc:  # a malformed sheet part
            raise RosterError(f"{path.name}: the sheet cannot be read ({type(exc).__name__}: "
                              f"{exc}); save it again from Excel as .xlsx") from None
    finally:
        workbook.close()
