"""Roster import: CSV and XLSX, Indonesian and English headers, messy numbers, re-import."""

from __future__ import annotations

from datetime import timedelta

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from bot.joincodes import ALPHABET, LENGTH
from bot.models import AuditLog, Cohort, Graduate, Institution
from bot.roster import RosterError, import_roster, parse_roster
from bot.roster_plan import COMMIT_EVERY
from tests.factories import make_cohort, make_graduates

INDONESIAN_CSV = (
    "No;Nama;LPKS;Paket;No WA;Keterampilan\n"
    "1;Siti Aminah;LPKS A'nur;Menjahit 3;0812-3456-7890;menjahit\n"
    "2;Budi Santoso;LPKS A'nur;Menjahit 3;+62 812 3456 7891;\n"
    "3;Dewi Lestari;LPKS A'nur;Menjahit 3;6281234567892;\n"
    "4;Rina Wati;LPKS A'nur;Menjahit 3;81234567893;\n"
    "5;Agus Salim;LPKS Batik Jaya;Batik Tulis 1;'0813 2222 3333;membatik\n"
    "6;Nur Hidayah;LPKS Batik Jaya;Batik Tulis 1;6281322223334.0;\n"
)


def write(path, text, encoding="utf-8-sig"):
    path.write_bytes(text.encode(encoding))
    return path


def graduates(session) -> dict[str, Graduate]:
    return {g.phone: g for g in session.scalars(select(Graduate))}


def test_indonesian_csv_with_semicolons_and_messy_numbers(db, tmp_path):
    path = write(tmp_path / "roster.csv", INDONESIAN_CSV)
    with db.session() as session:
        report = import_roster(session, path)
    assert report.summary() == "roster.csv: 6 created, 0 updated, 0 unchanged, 0 rejected"
    with db.session() as session:
        grads = graduates(session)
        assert sorted(grads) == ["+6281234567890", "+6281234567891", "+6281234567892",
                                 "+6281234567893", "+6281322223333", "+6281322223334"]
        siti = grads["+6281234567890"]
        assert siti.name == "Siti Aminah"
        assert siti.language == "id"
        assert siti.cohort.name == "Menjahit 3"
        assert siti.cohort.institution.name == "LPKS A'nur"
        # The cohort takes the first row's skill, and rows without a skill take the cohort's.
        assert siti.cohort.skill == "menjahit"
        assert grads["+6281234567891"].skill == "menjahit"
        assert grads["+6281322223334"].skill == "membatik"
        codes = [c.join_code for c in session.scalars(select(Cohort))]
        assert len(set(codes)) == 2  # random, not the cohort's name
        assert all(len(c) == LENGTH and set(c) <= set(ALPHABET) for c in codes)
        assert len(session.scalars(select(Institution)).all()) == 2


def test_cp1252_csv_with_commas(db, tmp_path):
    text = ("nama,lpks,paket,no_hp\n"
            "Yohanes Sé,LPKS A’nur,Tata Rias 2,0857-1111-2222\n")
    path = write(tmp_path / "alumni.csv", text, encoding="cp1252")
    with db.session() as session:
        report = import_roster(session, path)
    assert (report.created, report.rejected) == (1, [])
    with db.session() as session:
        grad = session.scalar(select(Graduate))
        assert grad.name == "Yohanes Sé"
        assert grad.phone == "+6285711112222"
        assert grad.cohort.institution.name == "LPKS A’nur"


def test_english_xlsx_with_excel_float_numbers(db, tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Institution", "Cohort", "Name", "WhatsApp", "Skill", "Language"])
    sheet.append(["LPKS Mandiri", "Welding 1", "John Doe", 6281234567890.0, "welding", "en"])
    sheet.append(["LPKS Mandiri", "Welding 1", "Ani", 6281234567891, None, "Indonesia"])
    sheet.append(["LPKS Mandiri", "Welding 1", "Tono", "0812 3456 7892", "", ""])
    workbook.save(tmp_path / "graduates.xlsx")
    with db.session() as session:
        report = import_roster(session, tmp_path / "graduates.xlsx")
    assert report.summary() == "graduates.xlsx: 3 created, 0 updated, 0 unchanged, 0 rejected"
    with db.session() as session:
        grads = graduates(session)
        assert grads["+6281234567890"].name == "John Doe"
        assert grads["+6281234567890"].language == "en"
        assert grads["+6281234567891"].language == "id"
        assert grads["+6281234567892"].skill == "welding"
        assert "WELDING" not in grads["+6281234567892"].cohort.join_code


def test_reimport_changes_nothing_then_picks_up_edits(db, tmp_path):
    path = write(tmp_path / "roster.csv", INDONESIAN_CSV)
    with db.session() as session:
        import_roster(session, path)
    with db.session() as session:
        before = {g.phone: (g.name, g.cohort_id, g.skill, g.language, g.updated_at)
                  for g in session.scalars(select(Graduate))}
        report = import_roster(session, path)
    assert report.summary() == "roster.csv: 0 created, 0 updated, 6 unchanged, 0 rejected"
    with db.session() as session:
        after = {g.phone: (g.name, g.cohort_id, g.skill, g.language, g.updated_at)
                 for g in session.scalars(select(Graduate))}
        assert after == before
        assert len(session.scalars(select(Cohort)).all()) == 2

    edited = INDONESIAN_CSV.replace("Budi Santoso", "Budi Santosa").replace(
        "4;Rina Wati;LPKS A'nur;Menjahit 3", "4;Rina Wati;LPKS Batik Jaya;Batik Tulis 1")
    with db.session() as session:
        report = import_roster(session, write(tmp_path / "roster.csv", edited))
    assert (report.created, report.updated, report.unchanged) == (0, 2, 4)
    with db.session() as session:
        grads = graduates(session)
        assert grads["+6281234567891"].name == "Budi Santosa"
        assert grads["+6281234567893"].cohort.name == "Batik Tulis 1"
        assert grads["+6281234567893"].skill == "membatik"


def test_bad_rows_reported_by_line_and_good_rows_kept(db, tmp_path):
    text = (
        "nama;lpks;paket;no_wa;bahasa\n"                      # line 1
        "Siti;LPKS A;Menjahit 3;081234567890;\n"              # 2 ok
        ";LPKS A;Menjahit 3;081234567891;\n"                  # 3 empty name
        "Budi;LPKS A;Menjahit 3;12345;\n"                     # 4 bad phone
        "\n"                                                  # 5 blank: skipped
        "Dewi;LPKS A;;081234567892;\n"                        # 6 missing paket
        "Siti Lain;LPKS A;Menjahit 3;0812-3456-7890;\n"       # 7 same phone as 2, other name
        "Siti;LPKS A;Menjahit 3;+6281234567890;\n"            # 8 exact repeat of 2: fine
        "Eko;LPKS A;Menjahit 3;6,28123E+12;\n"                # 9 number shortened by Excel
        "Fajar;LPKS A;Menjahit 3;081234567899;jawa\n"         # 10 unknown language
        "Gita;LPKS A;Menjahit 3;081234567898;en\n"            # 11 ok
    )
    path = write(tmp_path / "roster.csv", text)
    with db.session() as session:
        report = import_roster(session, path)
    assert report.summary() == "roster.csv: 2 created, 0 updated, 0 unchanged, 6 rejected"
    by_line = {p.line: p.reason for p in report.rejected}
    assert sorted(by_line) == [3, 4, 6, 7, 9, 10]
    assert "nama" in by_line[3] and "fill in" in by_line[3]
    assert "12345" in by_line[4] and "0812-3456-7890" in by_line[4]
    assert "paket" in by_line[6]
    assert "line 2" in by_line[7]
    assert "Text" in by_line[9]
    assert "id or en" in by_line[10]
    assert str(report.rejected[0]).startswith("line 3: ")
    with db.session() as session:
        grads = graduates(session)
        assert sorted(g.name for g in grads.values()) == ["Gita", "Siti"]
        assert grads["+6281234567898"].language == "en"


def test_missing_column_names_the_file_and_the_header(db, tmp_path):
    path = write(tmp_path / "roster.csv", "nama;lpks;paket;alamat\nSiti;A;B;Jl. Merdeka\n")
    with pytest.raises(RosterError) as info, db.session() as session:
        import_roster(session, path)
    message = str(info.value)
    assert "roster.csv" in message
    assert "no_wa" in message and "whatsapp" in message and "phone" in message
    assert "alamat" in message  # the headers it did find
    with db.session() as session:
        assert session.scalars(select(Graduate)).all() == []


@pytest.mark.parametrize("name, content, expected", [
    ("roster.pdf", b"%PDF-1.4", "unknown file format"),
    ("roster.xls", b"\xd0\xcf\x11\xe0", ".xlsx or CSV"),
    ("roster.xlsx", b"not a zip", "not a readable XLSX"),
    ("roster.csv", b"", "empty"),
])
def test_unusable_files(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RosterError, match=expected) as info:
        parse_roster(path)
    assert name in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(RosterError, match="cannot read"):
        parse_roster(tmp_path / "nope.csv")


def test_existing_graduate_moves_to_a_new_cohort_with_its_own_code(db, tmp_path):
    with db.session() as session:
        old = make_cohort(session, name="Menjahit 3", institution="LPKS Lama",
                          join_code="MENJAHIT3")
        make_graduates(session, old, count=1, first_phone=6281234567890)
    path = write(tmp_path / "roster.csv",
                 "lpks;paket;nama;no_wa\nLPKS Baru;Menjahit 3;Siti;0812-3456-7890\n")
    with db.session() as session:
        report = import_roster(session, path)
    assert (report.created, report.updated) == (0, 1)
    with db.session() as session:
        grad = session.scalar(select(Graduate))
        assert grad.name == "Siti"
        assert grad.cohort.institution.name == "LPKS Baru"
        assert grad.cohort.join_code not in ("MENJAHIT3", "MENJAHIT3B")
        assert len(grad.cohort.join_code) == LENGTH


def test_progress_callback_and_audit_entry(db, tmp_path):
    lines = ["lembaga,kelas,name,phone"]
    rows = COMMIT_EVERY + 200
    lines += [f"LPKS A,Las 1,Peserta {i},0812{i:08d}" for i in range(1, rows + 1)]
    path = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    seen: list[tuple[int, int]] = []
    with db.session() as session:
        report = import_roster(session, path, actor="admin",
                               progress=lambda done, total: seen.append((done, total)))
    assert report.created == rows
    assert seen == [(COMMIT_EVERY, rows), (rows, rows)]
    with db.session() as session:
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "import_roster"))
        assert entry.actor == "admin"
        assert entry.detail["file"] == "big.csv"
        assert entry.detail["created"] == rows
        # Written as sets, read back as the ORM writes them: aware times, the defaults.
        grad = session.scalar(select(Graduate).order_by(Graduate.id.desc()).limit(1))
        assert abs(grad.created_at - entry.created_at) < timedelta(minutes=1)
        assert grad.updated_at == grad.created_at
        assert (grad.language, grad.active, grad.opted_out, grad.answer_guessed) == (
            "id", True, False, False)
        assert entry.detail["rejected"] == 0
