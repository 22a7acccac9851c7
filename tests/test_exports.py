"""Exports: progress, messages and interests as CSV and XLSX, read back and checked."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot.exports import ExportError, export, rows
from bot.models import (
    INBOUND,
    OUTBOUND,
    REPORT_COMPLETED,
    REPORT_OPEN,
    AuditLog,
    CheckInRound,
    Interest,
    JobOpening,
    Message,
    ProgressReport,
)
from tests.factories import make_cohort, make_graduates

ROUND_AT = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)  # 09:00 in Jakarta
PROGRESS_COLUMNS = ["graduate", "phone", "institution", "cohort", "round_started_at",
                    "responded_at", "employment_status", "employer", "uses_training_skill",
                    "skill_rating", "needs_help", "status", "raw_answers"]
MESSAGE_COLUMNS = ["twilio_sid", "direction", "phone", "graduate", "cohort", "kind", "body",
                   "media_url", "status", "error_code", "created_at"]
INTEREST_COLUMNS = ["job_code", "job_title", "graduate", "phone", "cohort", "created_at"]


@pytest.fixture
def data(db):
    """Two cohorts in two institutions, three reports, messages and an interest."""
    with db.session() as session:
        cohort = make_cohort(session, name="Menjahit 3", institution="LPKS A'nur")
        other = make_cohort(session, name="Las 1", institution="LPKS Baja", skill="las")
        siti, budi, dewi = make_graduates(session, cohort, count=3)
        siti.name, budi.name, dewi.name = "Siti Aminah", "Budi", "Dewi"
        (eko,) = make_graduates(session, other, count=1, first_phone=6281300000001)
        rnd = CheckInRound(cohort_id=cohort.id, scheduled_for=ROUND_AT)
        rnd2 = CheckInRound(cohort_id=other.id, scheduled_for=ROUND_AT + timedelta(days=1))
        session.add_all([rnd, rnd2])
        session.flush()
        session.add_all([
            ProgressReport(round_id=rnd.id, graduate_id=siti.id, status=REPORT_COMPLETED,
                           employment_status="employed", employer="Konveksi Maju",
                           uses_training_skill=True, skill_rating=4, needs_help=None,
                           raw_answers={"status": ["sudah kerja"], "help": ["tidak"]},
                           responded_at=ROUND_AT + timedelta(hours=1, minutes=30)),
            ProgressReport(round_id=rnd.id, graduate_id=budi.id, status=REPORT_COMPLETED,
                           employment_status="employed", employer="Pabrik Sepatu",
                           uses_training_skill=False, skill_rating=2,
                           needs_help="butuh modal mesin jahit",
                           raw_answers={"status": ["1"]}, responded_at=ROUND_AT),
            ProgressReport(round_id=rnd.id, graduate_id=dewi.id, status=REPORT_OPEN),
            ProgressReport(round_id=rnd2.id, graduate_id=eko.id, status=REPORT_COMPLETED,
                           employment_status="seeking", skill_rating=3,
                           raw_answers={"status": ["blm dpt kerja"]}, responded_at=ROUND_AT),
        ])
        session.add_all([
            Message(direction=INBOUND, graduate_id=siti.id, cohort_id=cohort.id,
                    phone=siti.phone, kind="inbound", body="=HYPERLINK(\"http://x\")",
                    twilio_sid="SM" + "1" * 32, status="received", created_at=ROUND_AT),
            Message(direction=OUTBOUND, graduate_id=budi.id, cohort_id=cohort.id,
                    phone=budi.phone, kind="checkin", body="Halo Budi 👋", status="failed",
                    error_code="63016", created_at=ROUND_AT + timedelta(minutes=1)),
            Message(direction=INBOUND, phone="+6289999999999", kind="inbound", body="",
                    media_url="https://api.twilio.com/media/ME1", media_type="audio/ogg",
                    status="received", created_at=ROUND_AT + timedelta(minutes=2)),
        ])
        job = JobOpening(code="J7K2", title="Penjahit", employer="Konveksi Maju",
                         location="Pekalongan")
        session.add(job)
        session.flush()
        session.add(Interest(job_id=job.id, graduate_id=budi.id, created_at=ROUND_AT))
    return {"cohort": cohort.id, "institution": cohort.institution_id, "other": other.id}


def read_csv(path):
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM, for Excel
    return list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))


def read_xlsx(path):
    workbook = load_workbook(path, read_only=True)
    values = [list(r) for r in workbook.worksheets[0].iter_rows(values_only=True)]
    workbook.close()
    width = len(values[0])  # empty cells at the end of a row are not stored
    return [dict(zip(values[0], r + [None] * (width - len(r)), strict=True))
            for r in values[1:]]


def header_of(path, fmt):
    if fmt == "csv":
        return next(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    workbook = load_workbook(path, read_only=True)
    header = list(next(workbook.worksheets[0].iter_rows(values_only=True)))
    workbook.close()
    return header


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_progress_export(db, data, tmp_path, fmt):
    out = tmp_path / f"progress.{fmt}"
    with db.session() as session:
        assert export(session, "progress", fmt, out) == 4
    assert header_of(out, fmt)[:len(PROGRESS_COLUMNS)] == PROGRESS_COLUMNS
    table = read_csv(out) if fmt == "csv" else read_xlsx(out)
    empty = "" if fmt == "csv" else None
    by_name = {r["graduate"]: r for r in table}
    siti, budi, dewi, eko = (by_name[n] for n in ("Siti Aminah", "Budi", "Dewi",
                                                   "Lulusan Las 1 1"))
    assert siti["phone"] == "+6281200000001"
    assert siti["institution"] == "LPKS A'nur" and siti["cohort"] == "Menjahit 3"
    assert siti["round_started_at"] == "2024-05-01T09:00:00+07:00"
    assert siti["responded_at"] == "2024-05-01T10:30:00+07:00"
    assert siti["employment_status"] == "employed"
    assert siti["employer"] == "Konveksi Maju"
    assert siti["uses_training_skill"] == "true"
    assert str(siti["skill_rating"]) == "4"
    assert siti["needs_help"] == empty  # "tidak": nothing needed
    assert siti["status"] == "completed"
    assert json.loads(siti["raw_answers"]) == {"status": ["sudah kerja"], "help": ["tidak"]}
    assert " " not in siti["raw_answers"].replace("sudah kerja", "")  # compact JSON
    assert budi["uses_training_skill"] == "false"
    assert budi["needs_help"] == "butuh modal mesin jahit"
    assert eko["uses_training_skill"] == empty
    assert eko["employment_status"] == "seeking"
    assert dewi["employment_status"] == empty and dewi["responded_at"] == empty
    assert dewi["status"] == "open"
    # Ordered by round, then institution, cohort and name.
    assert [r["graduate"] for r in table] == ["Budi", "Dewi", "Siti Aminah", "Lulusan Las 1 1"]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_messages_export(db, data, tmp_path, fmt):
    out = tmp_path / f"messages.{fmt}"
    with db.session() as session:
        assert export(session, "messages", fmt, out) == 3
    assert header_of(out, fmt)[:len(MESSAGE_COLUMNS)] == MESSAGE_COLUMNS
    table = read_csv(out) if fmt == "csv" else read_xlsx(out)
    empty = "" if fmt == "csv" else None
    inbound, failed, voice = table
    assert inbound["twilio_sid"] == "SM" + "1" * 32
    assert inbound["direction"] == "in" and inbound["graduate"] == "Siti Aminah"
    assert inbound["cohort"] == "Menjahit 3"
    # A reply that looks like a formula stays text.
    if fmt == "csv":
        assert inbound["body"] == "'=HYPERLINK(\"http://x\")"
    else:
        assert inbound["body"] == "=HYPERLINK(\"http://x\")"
        workbook = load_workbook(out)
        assert workbook.worksheets[0]["G2"].data_type == "s"
    assert inbound["created_at"] == "2024-05-01T09:00:00+07:00"
    assert failed["body"] == "Halo Budi 👋"
    assert failed["status"] == "failed" and failed["error_code"] == "63016"
    assert failed["twilio_sid"] == empty
    assert voice["graduate"] == empty and voice["cohort"] == empty
    assert voice["media_url"] == "https://api.twilio.com/media/ME1"
    assert voice["phone"] == "+6289999999999"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_interests_export(db, data, tmp_path, fmt):
    out = tmp_path / f"interests.{fmt}"
    with db.session() as session:
        assert export(session, "interests", fmt, out) == 1
    assert header_of(out, fmt)[:len(INTEREST_COLUMNS)] == INTEREST_COLUMNS
    (row,) = read_csv(out) if fmt == "csv" else read_xlsx(out)
    assert row["job_code"] == "J7K2" and row["job_title"] == "Penjahit"
    assert row["graduate"] == "Budi" and row["phone"] == "+6281200000002"
    assert row["cohort"] == "Menjahit 3"
    assert row["created_at"] == "2024-05-01T09:00:00+07:00"


def test_export_writes_an_audit_entry(db, data, tmp_path):
    with db.session() as session:
        export(session, "messages", "csv", tmp_path / "m.csv", actor="ani",
               filters={"since": ROUND_AT})
    with db.session() as session:
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "export"))
        assert entry.actor == "ani"
        assert entry.detail["what"] == "messages" and entry.detail["format"] == "csv"
        assert entry.detail["rows"] == 3 and entry.detail["file"] == "m.csv"


def test_rows_filters_and_timezone(db, data):
    with db.session() as session:
        header, it = rows(session, "progress", {"institution_id": data["institution"]},
                          tz="UTC")
        table = [dict(zip(header, r, strict=True)) for r in it]
        assert {r["cohort"] for r in table} == {"Menjahit 3"}
        assert table[0]["round_started_at"] == "2024-05-01T02:00:00+00:00"
        _, it = rows(session, "progress", {"cohort_id": [data["other"]]})
        assert [r[0] for r in it] == ["Lulusan Las 1 1"]
        _, it = rows(session, "messages", {"since": ROUND_AT + timedelta(minutes=1)})
        assert len(list(it)) == 2
        with pytest.raises(ExportError, match="unknown export filter"):
            rows(session, "messages", {"colour": "red"})
        with pytest.raises(ExportError, match="unknown export"):
            rows(session, "graduates")
        with pytest.raises(ExportError, match="format"):
            export(session, "messages", "pdf", "out.pdf")


def test_many_messages_stream_to_xlsx(db, tmp_path):
    with db.session() as session:
        cohort = make_cohort(session)
        session.add_all(Message(direction=OUTBOUND, cohort_id=cohort.id, phone="+6281200000001",
                                kind="announcement", body=f"pesan {i}", status="delivered")
                        for i in range(2500))
    with db.session() as session:
        assert export(session, "messages", "xlsx", tmp_path / "m.xlsx") == 2500
    table = read_xlsx(tmp_path / "m.xlsx")
    assert len(table) == 2500 and table[-1]["body"] == "pesan 2499"
    assert not (tmp_path / "m.xlsx.part").exists()
