"""The office's reports: the outcome export (console and CLI), the tracer report and the
training dates it needs (roster columns, console form)."""

from __future__ import annotations

import csv
import io
import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select

from bot.cli import main
from bot.models import (
    REPORT_COMPLETED,
    REPORT_OPEN,
    AuditLog,
    CheckInRound,
    Cohort,
    ProgressReport,
)
from bot.roster import import_roster
from bot.staff.i18n import TEXT_DIR
from bot.tracer import add_months, build, window
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import csrf_from, signed_in_client

JAKARTA = ZoneInfo("Asia/Jakarta")
TODAY = date(2026, 2, 1)


def at(day: str, hour: int = 9, minute: int = 0) -> datetime:
    """A round time: ``day`` (dd/mm/yyyy) at a Jakarta wall-clock time, as UTC."""
    d = datetime.strptime(day, "%d/%m/%Y")
    return d.replace(hour=hour, minute=minute, tzinfo=JAKARTA).astimezone(UTC)


def answer(session, rnd, grad, status=None, *, skill=None, rating=None, help=None,
           employer=None, raw=None, state=REPORT_COMPLETED):
    session.add(ProgressReport(
        round_id=rnd.id, graduate_id=grad.id, status=state, employment_status=status,
        uses_training_skill=skill, skill_rating=rating, needs_help=help, employer=employer,
        raw_answers=raw or {}, responded_at=rnd.scheduled_for + timedelta(hours=1)
        if status else None, completed_at=rnd.scheduled_for + timedelta(hours=2)
        if state == REPORT_COMPLETED else None))


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    """The report is computed on 01/02/2026 (the clock decides which milestones are due)."""
    monkeypatch.setattr("bot.staff.reports.today", lambda: TODAY)


@pytest.fixture
def tracer_data(db):
    """Two LPKS, three cohorts; the answers the expected figures below are derived from.

    Menjahit 1 (LPKS A'nur): training 02/01/2025 - 31/01/2025, graduates G1-G4.
      3 months: 31/01 + 3 months = 30/04/2025, window 16/03/2025 - 14/06/2025
      6 months: 31/07/2025, window 16/06/2025 - 14/09/2025
      12 months: 31/01/2026, window 17/12/2025 - 17/03/2026 (open on 01/02/2026: in progress)
      Rounds: R1 01/03/2025 (before every window), R2 01/04, R3 01/05 (3 months),
      R6 15/06/2025 00:30 Jakarta (14/06 17:30 UTC: between the 3- and 6-month windows by
      the local day), R4 01/08/2025 (6 months), R5 10/01/2026 (12 months).
    Las 1 (LPKS Baja): training ended 31/10/2025, graduates H1-H2; 3 months = 31/01/2026,
      window 17/12/2025 - 17/03/2026 (in progress); 6 months opens 16/03/2026: not yet due.
      Round R7 15/01/2026.
    Tanpa tanggal (LPKS Baja): no training dates.
    """
    with db.session() as s:
        jahit = make_cohort(s, "Menjahit 1", institution="LPKS A'nur")
        jahit.training_start, jahit.training_end = date(2025, 1, 2), date(2025, 1, 31)
        g1, g2, g3, g4 = make_graduates(s, jahit, 4)
        g4.opted_out = True
        las = make_cohort(s, "Las 1", institution="LPKS Baja", skill="las")
        las.training_end = date(2025, 10, 31)
        h1, h2 = make_graduates(s, las, 2, first_phone=6281300000001)
        make_cohort(s, "Tanpa tanggal", institution="LPKS Baja", skill="las")
        rounds = {}
        for name, cohort, when in (("R1", jahit, at("01/03/2025")), ("R2", jahit, at("01/04/2025")),
                                   ("R3", jahit, at("01/05/2025")),
                                   ("R6", jahit, at("15/06/2025", 0, 30)),
                                   ("R4", jahit, at("01/08/2025")),
                                   ("R5", jahit, at("10/01/2026")),
                                   ("R7", las, at("15/01/2026"))):
            rounds[name] = CheckInRound(cohort_id=cohort.id, scheduled_for=when)
            s.add(rounds[name])
        s.flush()
        r = rounds
        answer(s, r["R1"], g1, "employed", skill=True, rating=5)  # before the windows
        answer(s, r["R2"], g1, "seeking", rating=1)
        answer(s, r["R3"], g1, "employed", skill=True, rating=4, employer="Konveksi Maju",
               raw={"status": ["1"], "employer": ["Konveksi Maju"], "rating": ["4"]})
        answer(s, r["R4"], g1, "employed", skill=False, rating=3)
        answer(s, r["R5"], g1, "employed", skill=True, rating=5, help="modal")
        answer(s, r["R2"], g2, "self_employed", skill=True, rating=5, help="modal usaha")
        answer(s, r["R3"], g2, None, state=REPORT_OPEN)  # asked, no answer yet
        answer(s, r["R6"], g2, "seeking", rating=1)  # between windows: counts nowhere
        answer(s, r["R5"], g2, "self_employed")
        answer(s, r["R3"], g3, "studying", rating=2)
        answer(s, r["R4"], g3, "seeking", rating=3, help="pelatihan lanjutan")
        answer(s, r["R7"], h1, "employed", skill=True, rating=4)
        return {"jahit": jahit.id, "las": las.id, "g1": g1.id}


def test_milestone_windows_are_calendar_months_and_45_days():
    assert add_months(date(2025, 1, 31), 1) == date(2025, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2025, 10, 31), 3) == date(2026, 1, 31)
    assert window(date(2025, 1, 31), 3) == (date(2025, 3, 16), date(2025, 6, 14))
    assert window(date(2025, 1, 31), 6) == (date(2025, 6, 16), date(2025, 9, 14))
    assert window(date(2025, 1, 31), 12) == (date(2025, 12, 17), date(2026, 3, 17))


def _figures(cell):
    return (cell.graduates, cell.answered, dict(cell.statuses), cell.skill, cell.rating_sum,
            cell.ratings, cell.help, cell.due, cell.in_progress)


def test_tracer_figures_match_the_hand_count(db, tracer_data):
    with db.read_session() as s:
        report = build(s, today=TODAY)
    kinds = [(r.kind, r.institution, r.cohort) for r in report.rows]
    assert kinds == [("cohort", "LPKS A'nur", "Menjahit 1"), ("institution", "LPKS A'nur", ""),
                     ("cohort", "LPKS Baja", "Las 1"), ("institution", "LPKS Baja", ""),
                     ("total", "", "")]
    jahit, _, las, baja, total = report.rows
    none = {"employed": 0, "self_employed": 0, "seeking": 0, "studying": 0}
    # 3 months, Menjahit 1: G1 R3 employed+skill 4 (latest in window, R2 not), G2 R2
    # self-employed+skill 5 + help (R3 open, R6 outside), G3 R3 studying 2, G4 nothing.
    # 3 of 4 answered; working 2, both with the skill; ratings 4+5+2 = 11 over 3; help 1.
    assert _figures(jahit.cells[3]) == (
        4, 3, {**none, "employed": 1, "self_employed": 1, "studying": 1}, 2, 11, 3, 1,
        True, False)
    assert jahit.cells[3].response_rate == 0.75
    assert round(jahit.cells[3].working_share, 4) == round(2 / 3, 4)
    assert jahit.cells[3].skill_share == 1.0
    assert round(jahit.cells[3].rating, 2) == 3.67
    # 6 months: G1 R4 employed, no skill, 3; G3 R4 seeking 3 + help; G2 only R6 (outside).
    # 2 of 4; working 1 without the skill; ratings 3+3 = 6 over 2; help 1.
    assert _figures(jahit.cells[6]) == (
        4, 2, {**none, "employed": 1, "seeking": 1}, 0, 6, 2, 1, True, False)
    assert (jahit.cells[6].response_rate, jahit.cells[6].working_share,
            jahit.cells[6].skill_share, jahit.cells[6].rating) == (0.5, 0.5, 0.0, 3.0)
    # 12 months (window open until 17/03/2026): G1 R5 employed+skill 5 + help; G2 R5
    # self-employed, skill and rating not given. 2 of 4; working 2, 1 with skill; rating 5.
    assert _figures(jahit.cells[12]) == (
        4, 2, {**none, "employed": 1, "self_employed": 1}, 1, 5, 1, 1, True, True)
    assert (jahit.cells[12].skill_share, jahit.cells[12].rating) == (0.5, 5.0)
    # Las 1 at 3 months: H1 employed+skill 4; H2 nothing. 1 of 2.
    assert _figures(las.cells[3]) == (2, 1, {**none, "employed": 1}, 1, 4, 1, 0, True, True)
    assert not las.cells[6].due and not las.cells[12].due
    assert _figures(baja.cells[3]) == _figures(las.cells[3])
    # Overall at 3 months: 4+2 graduates, 3+1 answered, ratings 11+4 = 15 over 4.
    assert _figures(total.cells[3]) == (
        6, 4, {**none, "employed": 2, "self_employed": 1, "studying": 1}, 3, 15, 4, 1,
        True, True)
    assert total.cells[3].rating == 3.75 and total.cells[3].working_share == 0.75
    # At 6 and 12 months Las 1 is not due: the totals are Menjahit 1's alone.
    assert _figures(total.cells[6]) == _figures(jahit.cells[6])
    assert [(r.institution, r.cohort) for r in report.undated] == [("LPKS Baja",
                                                                    "Tanpa tanggal")]


def test_tracer_period_and_scope_choose_cohorts(db, tracer_data):
    with db.read_session() as s:
        later = build(s, date_from=date(2025, 6, 1), date_to=date(2025, 12, 31), today=TODAY)
        assert [r.cohort for r in later.rows if r.kind == "cohort"] == ["Las 1"]
        only = build(s, cohort_ids=[tracer_data["jahit"]], today=TODAY)
        assert [r.cohort for r in only.rows if r.kind == "cohort"] == ["Menjahit 1"]
        assert build(s, date_from=date(2027, 1, 1), today=TODAY).rows == []


def test_tracer_page_shows_the_figures_and_the_definition(app, db, tracer_data, tmp_path,
                                                         settings):
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    from bot import create_app

    office = settings.with_overrides(office={"name": "Disnaker Kota Contoh",
                                             "logo_path": str(logo)})
    app = create_app(office, db)
    client = signed_in_client(app, db)
    html = client.get("/staff/tracer?from=01/01/2025&to=31/12/2025").get_data(as_text=True)
    assert "Laporan tracer" in html and "Disnaker Kota Contoh" in html
    assert 'src="/staff/office-logo"' in html
    assert client.get("/staff/office-logo").data.startswith(b"\x89PNG")
    assert "01/01/2025 – 31/12/2025" in html
    assert "[selesai pelatihan + N bulan − 45 hari, selesai pelatihan + N bulan + 45 hari]" \
        in html
    # Menjahit 1 at 3 months: 3 answered of 4 (75%), 1 employed (33%).
    section = html.split('data-months="3"')[1].split("</section>")[0]
    row = section.split(f'data-cohort="{tracer_data["jahit"]}"')[1].split("</tr>")[0]
    assert "3 <span class=\"pct\">(75%)</span>" in row
    assert "3,7" in row and "100%" in row
    assert "belum waktunya" in html.split('data-months="6"')[1].split("</section>")[0]
    english = client.get("/staff/tracer?lang=en").get_data(as_text=True)
    assert "Tracer report" in english and "not yet due" in english
    assert "Tanpa tanggal" in english  # undated cohorts are listed with a way to fix them


def test_tracer_xlsx_has_the_figures(app, db, tracer_data):
    client = signed_in_client(app, db)
    response = client.get("/staff/tracer/export.xlsx?from=01/01/2025&to=31/12/2025")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    header = values[4]
    jahit = next(r for r in values if r[1] == "Menjahit 1")
    got = dict(zip(header, jahit, strict=True))
    assert got["Selesai pelatihan"] == datetime(2025, 1, 31)
    assert got["Lulusan"] == 4
    assert got["3 bln: Menjawab"] == 3 and got["3 bln: Tingkat jawaban"] == 0.75
    assert got["6 bln: Bekerja"] == 1 and got["6 bln: Mencari kerja"] == 1
    assert got["12 bln: Sesuai keterampilan"] == 0.5
    las = next(r for r in values if r[1] == "Las 1")
    assert dict(zip(header, las, strict=True))["6 bln: Menjawab"] == "belum waktunya"
    with db.read_session() as s:
        assert s.scalar(select(AuditLog.detail).where(AuditLog.action == "export"))["what"] \
            == "tracer"


def test_viewer_sees_only_their_institution(app, db, tracer_data):
    client = signed_in_client(app, db, name="vina", role="viewer", institution="LPKS Baja")
    html = client.get("/staff/tracer").get_data(as_text=True)
    assert "Las 1" in html and "Menjahit 1" not in html
    assert client.get(f"/staff/outcomes?cohort_id={tracer_data['jahit']}").status_code == 404
    data = client.get("/staff/outcomes/export.csv").data.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(data)))
    assert {r["Paket"] for r in rows} == {"Las 1"}
    url = f"/staff/tracer/cohorts/{tracer_data['las']}/dates"
    assert client.get(url).status_code == 403
    refused = client.post(url, data={"csrf_token": csrf_from(html), "end": "01/01/2025"})
    assert refused.status_code == 403
    with db.read_session() as s:
        assert s.get(Cohort, tracer_data["las"]).training_end == date(2025, 10, 31)


# --- outcome export ---------------------------------------------------------------------------

def test_outcome_export_is_readable_in_both_languages(app, db, tracer_data):
    client = signed_in_client(app, db)
    page = client.get("/staff/outcomes").get_data(as_text=True)
    assert "12 baris sesuai filter." in page
    response = client.get(
        f"/staff/outcomes/export.xlsx?cohort_id={tracer_data['jahit']}&from=01/05/2025"
        "&to=31/05/2025")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(response.data)).active
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert header[:4] == ["LPKS", "Paket", "Nama", "No. WA"]
    assert "Jawaban asli: tempat kerja" in header
    assert len(rows) == 3  # R3: G1, G2 (open), G3
    g1 = dict(zip(header, next(r for r in rows if r[2].endswith(" 1")), strict=True))
    assert g1["Status kerja"] == "Bekerja" and g1["Memakai keterampilan pelatihan"] == "Ya"
    assert g1["Tanggal putaran"] == datetime(2025, 5, 1)
    assert g1["Jawaban asli: tempat kerja"] == "Konveksi Maju"
    assert g1["Status laporan"] == "Selesai"
    assert sheet["F2"].number_format == "DD/MM/YYYY"
    assert not any(isinstance(v, str) and v.startswith("{") for r in rows for v in r)

    csv_text = client.get("/staff/outcomes/export.csv?lang=en&from=01/05/2025&to=31/05/2025"
                          ).data.decode("utf-8-sig")
    en = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["Round date"] for r in en] == ["01/05/2025"] * 3
    assert {r["Employment status"] for r in en} == {"Employed", "Studying", ""}
    assert en[0]["First reply"].startswith("01/05/2025 ")


def test_outcome_csv_neutralises_formulas(app, db, tracer_data):
    with db.session() as s:
        rnd = s.scalar(select(CheckInRound).order_by(CheckInRound.id))
        report = s.scalar(select(ProgressReport).where(ProgressReport.round_id == rnd.id))
        report.employer = "=HYPERLINK(\"http://x\")"
        report.needs_help = "+1+cmd"
    data = signed_in_client(app, db).get("/staff/outcomes/export.csv").data.decode("utf-8-sig")
    row = next(r for r in csv.DictReader(io.StringIO(data)) if r["Tempat kerja / usaha"])
    assert row["Tempat kerja / usaha"] == "'=HYPERLINK(\"http://x\")"
    assert row["Bantuan yang diminta"] == "'+1+cmd"


def test_bad_filter_dates_are_explained_not_errors(app, db, tracer_data):
    client = signed_in_client(app, db)
    response = client.get("/staff/outcomes?from=2025-13-40")
    assert response.status_code == 200
    assert "dd/mm/yyyy" in response.get_data(as_text=True)
    assert client.get("/staff/tracer?from=kemarin").status_code == 200
    assert client.get("/staff/outcomes?cohort_id=abc").status_code == 404


# --- training dates ---------------------------------------------------------------------------

def test_training_dates_edited_in_the_console(app, db, tracer_data):
    client = signed_in_client(app, db)
    url = f"/staff/tracer/cohorts/{tracer_data['las']}/dates"
    page = client.get(url).get_data(as_text=True)
    assert 'value="31/10/2025"' in page
    token = csrf_from(page)
    bad = client.post(url, data={"csrf_token": token, "start": "31/13/2025", "end": ""})
    assert bad.status_code == 400
    assert "31/13/2025 bukan tanggal dd/mm/yyyy" in bad.get_data(as_text=True)
    reversed_ = client.post(url, data={"csrf_token": token, "start": "01/11/2025",
                                       "end": "31/10/2025"})
    assert reversed_.status_code == 400
    ok = client.post(url, data={"csrf_token": token, "start": "01/09/2025",
                                "end": "30/09/2025"})
    assert ok.status_code == 302
    with db.read_session() as s:
        las = s.get(Cohort, tracer_data["las"])
        assert (las.training_start, las.training_end) == (date(2025, 9, 1), date(2025, 9, 30))
        entry = s.scalar(select(AuditLog).where(AuditLog.action == "cohort.training_dates"))
        assert entry.detail["after"]["training_end"] == "2025-09-30"


def test_roster_import_reads_training_dates(db, tmp_path):
    roster = tmp_path / "peserta.csv"
    roster.write_text(
        "lpks,paket,nama,no_wa,mulai_pelatihan,selesai_pelatihan\n"
        "LPKS A'nur,Menjahit 5,Siti,0812-3456-7890,02/01/2025,31/01/2025\n"
        "LPKS A'nur,Menjahit 5,Ani,0812-3456-7891,,\n"
        "LPKS A'nur,Menjahit 6,Budi,0812-3456-7892,31/02/2025,\n"
        "LPKS A'nur,Menjahit 7,Rina,0812-3456-7893,10/03/2025,01/03/2025\n", encoding="utf-8")
    with db.session() as s:
        report = import_roster(s, roster)
    assert report.created == 2
    assert [(p.line, p.reason.split(" ")[0]) for p in report.rejected] == [
        (4, "mulai_pelatihan"), (5, "selesai_pelatihan")]
    assert "dd/mm/yyyy" in report.rejected[0].reason
    with db.read_session() as s:
        cohort = s.scalar(select(Cohort).where(Cohort.name == "Menjahit 5"))
        assert (cohort.training_start, cohort.training_end) == (date(2025, 1, 2),
                                                                date(2025, 1, 31))


# --- the command line -------------------------------------------------------------------------

@pytest.fixture
def run(settings, tmp_path):
    config = tmp_path / "kabar.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n', encoding="utf-8")

    def invoke(*args: str):
        return CliRunner().invoke(main, ["--config", str(config), *args])

    return invoke


def test_cli_export_format_follows_the_file_name(run, db, tracer_data, tmp_path):
    out = tmp_path / "progres.xlsx"
    result = run("export", "progress", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "wrote 12 progress rows" in result.output and "(xlsx)" in result.output
    assert out.read_bytes()[:2] == b"PK"  # a real workbook, not CSV under a .xlsx name
    header = next(load_workbook(out, read_only=True).active.iter_rows(values_only=True))
    assert header[:3] == ("LPKS", "Paket", "Nama")

    out_csv = tmp_path / "progres.csv"
    result = run("export", "progress", "--language", "en", "--output", str(out_csv))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8-sig", newline="")))
    assert {r["Employment status"] for r in rows} >= {"Employed", "Self-employed"}
    assert all(r["Round date"].count("/") == 2 for r in rows)


def test_cli_export_refuses_a_format_that_contradicts_the_file_name(run, tmp_path):
    result = run("export", "progress", "--format", "csv", "--output",
                 str(tmp_path / "progres.xlsx"))
    assert result.exit_code == 2
    assert "--format csv does not match the file name" in result.output
    assert not (tmp_path / "progres.xlsx").exists()


def test_cli_codes_keep_the_machine_layout(run, db, tracer_data, tmp_path):
    out = tmp_path / "kode.csv"
    result = run("export", "progress", "--codes", "--output", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig", newline="")))
    assert "self_employed" in {r["employment_status"] for r in rows}


def test_report_texts_exist_in_both_languages():
    def keys(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from keys(value, f"{prefix}{key}.")
            else:
                yield prefix + key

    texts = {lang: set(keys(tomllib.loads((TEXT_DIR / lang / "reports.toml").read_text(
        encoding="utf-8")))) for lang in ("id", "en")}
    assert texts["id"] == texts["en"]
    assert Path(TEXT_DIR / "id" / "reports.toml").is_file()


def test_office_logo_must_be_an_image(settings):
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match=r"office\.logo_path must be a .*\.png"):
        settings.with_overrides(office={"logo_path": "/etc/kabar/logo.exe"})
    assert settings.with_overrides(office={"name": "Disnaker"}).office.name == "Disnaker"
