"""Hostile roster files, and how long and how much memory reading each one costs.

``python benchmarks/hostile_rosters.py [FOLDER]`` builds each file (all under the 8 MB upload
limit, as an attacker would send them), then reads it with ``bot.roster.parse_roster`` in a
fresh Python process and prints the outcome, the wall time and the peak resident memory of that
process (``VmHWM``, Python and openpyxl included). ``tests/test_roster_hostile.py`` builds
the same files and asserts each is answered within 5 s and 200 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
    'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
    'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
    'schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>')
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/'
    'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets>'
    '</workbook>')
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
    'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
    'schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.'
    'openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
    'Target="sharedStrings.xml"/></Relationships>')
SHEET_HEAD = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.'
              'openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
SHEET_TAIL = "</sheetData></worksheet>"
HEADER_ROW = ('<row r="1">' + "".join(
    f'<c r="{col}1" t="inlineStr"><is><t>{name}</t></is></c>'
    for col, name in zip("ABCD", ("lpks", "paket", "nama", "no_wa"), strict=True)) + "</row>")
CHUNK = 20_000  # rows written at a time


def _xlsx(path: Path, rows: Callable[[], Iterator[str]], shared: Iterator[str] | None = None,
          sheet_head: str = SHEET_HEAD) -> Path:
    """A minimal workbook whose sheet streams ``rows`` (and ``shared`` strings) into the zip."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as part:
            part.write(b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.'
                       b'openxmlformats.org/spreadsheetml/2006/main">')
            for chunk in shared or ():
                part.write(chunk.encode())
            part.write(b"</sst>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as part:
            part.write(sheet_head.encode())
            for chunk in rows():
                part.write(chunk.encode())
            part.write(SHEET_TAIL.encode())
    return path


def empty_rows(folder: Path, count: int = 5_000_000) -> Path:
    def rows() -> Iterator[str]:
        yield HEADER_ROW
        for start in range(2, count + 2, CHUNK):
            yield "".join(f'<row r="{n}"/>' for n in range(start, min(start + CHUNK,
                                                                      count + 2)))
    return _xlsx(folder / "empty-rows.xlsx", rows)


def bad_rows(folder: Path, count: int = 2_000_000) -> Path:
    def rows() -> Iterator[str]:
        yield HEADER_ROW
        cell = '<c r="D{n}" t="inlineStr"><is><t>x</t></is></c>'
        for start in range(2, count + 2, CHUNK):
            yield "".join(f'<row r="{n}">{cell.format(n=n)}</row>'
                          for n in range(start, min(start + CHUNK, count + 2)))
    return _xlsx(folder / "bad-rows.xlsx", rows)


def rows_over_the_limit(folder: Path, count: int = 60_000) -> Path:
    """More rows than ``roster.max_rows`` in a workbook small enough to be opened."""
    def rows() -> Iterator[str]:
        yield HEADER_ROW
        cells = ('<c r="A{n}" t="inlineStr"><is><t>LPKS</t></is></c>'
                 '<c r="B{n}" t="inlineStr"><is><t>Paket</t></is></c>'
                 '<c r="C{n}" t="inlineStr"><is><t>Nama</t></is></c>'
                 '<c r="D{n}" t="inlineStr"><is><t>bukan nomor</t></is></c>')
        for start in range(2, count + 2, CHUNK):
            yield "".join(f'<row r="{n}">{cells.format(n=n)}</row>'
                          for n in range(start, min(start + CHUNK, count + 2)))
    return _xlsx(folder / "rows-over-the-limit.xlsx", rows)


def shared_strings_bomb(folder: Path, megabytes: int = 2_300) -> Path:
    one = "<si><t>" + "A" * 1_000 + "</t></si>"
    per_chunk = 1_000
    chunks = megabytes * 1024 * 1024 // (len(one) * per_chunk)

    def shared() -> Iterator[str]:
        block = one * per_chunk
        for _ in range(chunks):
            yield block

    return _xlsx(folder / "shared-strings-bomb.xlsx", lambda: iter([HEADER_ROW]), shared())


def dtd_entities(folder: Path) -> Path:
    head = ('<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            '<sheetData>')
    return _xlsx(folder / "entities.xlsx", lambda: iter([HEADER_ROW]), sheet_head=head)


def zip_without_extension(folder: Path) -> Path:
    source = dtd_entities(folder)
    target = folder / "roster-from-email"
    target.write_bytes(source.read_bytes())
    return target


def bad_csv_lines(folder: Path, count: int = 3_900_000) -> Path:
    path = folder / "bad-lines.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("lpks,paket,nama,no_wa\n")
        fh.write("x\n" * count)
    return path


def utf16_csv(folder: Path) -> Path:
    path = folder / "unicode-text.csv"
    text = "lpks\tpaket\tnama\tno_wa\nLPKS Mawar\tMenjahit 1\tSiti Nurhaliza\t0812-3456-7890\n"
    path.write_bytes(text.encode("utf-16"))  # with a byte order mark, as Excel saves it
    return path


HOSTILE = {"5 M empty XLSX rows": empty_rows, "2 M bad XLSX rows": bad_rows,
           "60,000 bad XLSX rows within the unzipped limit": rows_over_the_limit,
           "shared-strings bomb (2.3 GB)": shared_strings_bomb,
           "3.9 M bad CSV lines": bad_csv_lines, "DTD / XML entities": dtd_entities,
           "zip without .xlsx": zip_without_extension, "UTF-16 CSV": utf16_csv}

MEASURE = """
import json, sys, time
from pathlib import Path
from bot.roster import RosterError, parse_roster
started, cpu = time.monotonic(), time.process_time()
try:
    rows, problems = parse_roster(Path(sys.argv[1]))
    outcome = {"rows": len(rows), "problems_listed": len(problems),
               "problems": getattr(problems, "total", len(problems))}
except RosterError as exc:
    outcome = {"refused": str(exc)}
outcome["seconds"] = round(time.monotonic() - started, 2)
outcome["cpu_seconds"] = round(time.process_time() - cpu, 2)
# VmHWM: this process's peak resident memory (ru_maxrss would include the parent's before exec)
status = Path("/proc/self/status").read_text()
peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
outcome["peak_mb"] = round(peak_kb / 1024, 1)
print(json.dumps(outcome))
"""


def measure(path: Path) -> dict:
    """Read ``path`` with ``parse_roster`` in a fresh process: outcome, seconds, peak MB."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    folder.mkdir(parents=True, exist_ok=True)
    print("| file | size on disk | outcome | CPU time | wall time | peak memory |\n"
          "|---|---|---|---|---|---|")
    for label, build in HOSTILE.items():
        path = build(folder)
        result = measure(path)
        outcome = (f"refused: {result['refused']}" if "refused" in result else
                   f"{result['rows']} rows, {result['problems']} problems")
        print(f"| {label} | {path.stat().st_size / 1024 / 1024:.1f} MB | {outcome} | "
              f"{result['cpu_seconds']} s | {result['seconds']} s | {result['peak_mb']} MB |")


if __name__ == "__main__":
    main()
