"""The console page of replies Kabar did not understand: groups across graduates, one-click
teaching by staff (audited, optionally re-reading open reports), the taught list with its delete
button, and viewers limited to a read-only list of their own institution."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.learning import learned_meanings, record_unplaced
from bot.models import (
    INBOUND,
    MSG_HANDLED,
    REPORT_COMPLETED,
    REPORT_OPEN,
    AuditLog,
    CheckInRound,
    Message,
    ProgressReport,
    UnplacedReply,
    VocabularyEntry,
)
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import csrf_from, signed_in_client

NOW = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)


@pytest.fixture
def unplaced(db):
    """Menjahit 1 (LPKS A'nur): three graduates wrote "lagi nyari2 kak" to the status question
    (two reports open, one completed) and one "lumayan" to the rating; Bordir 1 (LPKS
    Nisfisano): one graduate wrote "gak tau" to the status question."""
    with db.session() as session:
        sewing = make_cohort(session, "Menjahit 1")
        embroidery = make_cohort(session, "Bordir 1", "LPKS Nisfisano")
        graduates = make_graduates(session, sewing, 3)
        other = make_graduates(session, embroidery, 1, first_phone=6281300000001)[0]
        rounds = {}
        for cohort in (sewing, embroidery):
            rounds[cohort.id] = CheckInRound(cohort_id=cohort.id,
                                             scheduled_for=NOW - timedelta(days=1))
            session.add(rounds[cohort.id])
        session.flush()
        reports = []
        for i, graduate in enumerate([*graduates, other]):
            report = ProgressReport(round_id=rounds[graduate.cohort_id].id,
                                    graduate_id=graduate.id, raw_answers={},
                                    status=REPORT_COMPLETED if i == 2 else REPORT_OPEN)
            session.add(report)
            session.flush()
            reports.append(report)
        for i, (graduate, text) in enumerate(
                [(graduates[0], "Lagi nyari2 kak"), (graduates[1], "lagi nyari2 kakkk!!"),
                 (graduates[2], "lagi nyari2 kak"), (other, "gak tau")]):
            message = Message(direction=INBOUND, graduate_id=graduate.id,
                              cohort_id=graduate.cohort_id, phone=graduate.phone,
                              kind="inbound", body=text, status=MSG_HANDLED)
            session.add(message)
            session.flush()
            record_unplaced(session, graduate_id=graduate.id, report_id=reports[i].id,
                            message_id=message.id, question="status", text=text,
                            now=NOW + timedelta(minutes=i))
        record_unplaced(session, graduate_id=graduates[0].id, report_id=reports[0].id,
                        message_id=None, question="rating", text="lumayan", now=NOW)
        return {"graduates": [g.id for g in graduates], "other": other.id,
                "reports": [r.id for r in reports], "sewing": sewing.id}


def groups_on(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr class="group" data-question="(\w+)" data-phrase="([^"]*)"', html)


def teach_form(client, question: str, phrase: str, meaning: str, reread: bool = False,
               **extra):
    page = client.get("/staff/belum-dipahami").get_data(as_text=True)
    data = {"csrf_token": csrf_from(page), "question": question, "phrase": phrase,
            "meaning": meaning, **extra}
    if reread:
        data["reread"] = "y"
    return client.post("/staff/belum-dipahami/ajari", data=data)


def test_staff_see_the_groups_most_frequent_first_with_counts_and_an_example(app, db,
                                                                             unplaced):
    client = signed_in_client(app, db, "rina", "staff")
    response = client.get("/staff/belum-dipahami")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Balasan yang belum dipahami" in html and 'href="/staff/belum-dipahami"' in html
    # Most replies first, then the most recently written.
    assert groups_on(html) == [("status", "lagi nyari2 kak"), ("rating", "lumayan"),
                               ("status", "gak tau")]
    first = html.split('<tr class="group"')[1]
    assert "<strong>3</strong>" in first and "3 lulusan" in first
    assert "Status sekarang (bekerja, usaha, mencari kerja, sekolah)" in first
    assert "<q class=\"raw\">lagi nyari2 kak</q>" in first  # the latest raw text
    graduate = unplaced["graduates"][2]
    assert f'href="/staff/graduates/{graduate}?before=' in first
    assert f'href="/staff/cohorts/{unplaced["sewing"]}"' in first
    assert "Baca ulang juga 1 laporan terbuka yang akan berubah" not in first
    assert "Baca ulang juga 2 laporan terbuka yang akan berubah" in first
    for meaning in ("Bekerja", "Usaha sendiri", "Mencari kerja", "Sekolah / kursus"):
        assert f">{meaning}</button>" in first

    english = client.get("/staff/belum-dipahami?lang=en").get_data(as_text=True)
    assert "Replies Kabar did not understand" in english and "3 graduates" in english


def test_one_click_teaches_a_group_which_leaves_the_list_and_is_audited(app, db, unplaced):
    client = signed_in_client(app, db, "rina", "staff")
    response = teach_form(client, "status", "lagi nyari2 kak", "seeking")
    assert response.status_code == 302
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert ("status", "lagi nyari2 kak") not in groups_on(html)
    assert "\u201clagi nyari2 kak\u201d" in html or "lagi nyari2 kak" in html
    assert "sekarang berarti Mencari kerja (Status kerja); 3 balasan selesai." in html
    assert '<table class="taught">' in html and "<strong>Mencari kerja</strong>" in html

    with db.read_session() as session:
        assert learned_meanings(session)["status"] == {"lagi nyari2 kak": "seeking"}
        audit = session.scalars(select(AuditLog).where(
            AuditLog.action == "vocabulary.taught")).one()
        assert audit.actor == "rina" and audit.detail["resolved"] == 3
        # Without the checkbox nothing was re-read.
        assert all(r.employment_status is None for r in session.scalars(
            select(ProgressReport)))

    log = client.get("/staff/audit").get_data(as_text=True)
    assert "arti balasan diajarkan" in log and "lagi nyari2 kak" in log


def test_re_reading_fills_the_open_reports_only(app, db, unplaced):
    client = signed_in_client(app, db, "rina", "admin")
    response = teach_form(client, "status", "lagi nyari2 kak", "seeking", reread=True)
    assert response.status_code == 302
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 laporan terbuka dibaca ulang." in html
    with db.read_session() as session:
        statuses = [session.get(ProgressReport, r).employment_status
                    for r in unplaced["reports"]]
    assert statuses == ["seeking", "seeking", None, None]  # the completed one is left alone


def test_a_meaning_the_question_cannot_have_is_refused_with_a_clear_message(app, db,
                                                                            unplaced):
    client = signed_in_client(app, db, "rina", "staff")
    response = teach_form(client, "rating", "lumayan", "employed")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert ("&#34;employed&#34; bukan arti untuk pertanyaan &#34;Nilai keterampilan (1–5)&#34;."
            " Pilih salah satu: 1, 2, 3, 4, 5.") in html
    assert teach_form(client, "employer", "lumayan", "yes").status_code == 400
    assert teach_form(client, "rating", "", "3").status_code == 400
    assert teach_form(client, "rating", "lumayan", "3", page="abc").status_code == 400
    # No CSRF token: refused, nothing stored.
    no_token = client.post("/staff/belum-dipahami/ajari",
                           data={"question": "rating", "phrase": "lumayan", "meaning": "3"})
    assert no_token.status_code == 400
    assert "CSRF token is missing" in no_token.get_data(as_text=True)
    with db.read_session() as session:
        assert session.scalars(select(VocabularyEntry)).all() == []
        assert session.scalars(select(UnplacedReply).where(
            UnplacedReply.resolved_at.is_not(None))).all() == []
    assert client.get("/staff/belum-dipahami?page=0").status_code == 404
    assert client.get("/staff/belum-dipahami?page=x").status_code == 404


def test_a_taught_meaning_can_be_deleted_and_that_is_audited(app, db, unplaced):
    client = signed_in_client(app, db, "rina", "staff")
    teach_form(client, "rating", "lumayan", "3")
    html = client.get("/staff/belum-dipahami").get_data(as_text=True)
    entry_id = re.search(r'/staff/belum-dipahami/arti/(\d+)/hapus', html).group(1)
    response = client.post(f"/staff/belum-dipahami/arti/{entry_id}/hapus",
                           data={"csrf_token": csrf_from(html)})
    assert response.status_code == 302
    after = client.get("/staff/belum-dipahami").get_data(as_text=True)
    assert "Arti dihapus" in after and "Belum ada arti yang diajarkan." in after
    with db.read_session() as session:
        assert learned_meanings(session)["rating"] == {}
        assert session.scalars(select(AuditLog).where(
            AuditLog.action == "vocabulary.forgotten")).one().actor == "rina"
    again = client.post(f"/staff/belum-dipahami/arti/{entry_id}/hapus",
                        data={"csrf_token": csrf_from(html)})
    assert again.status_code == 404


def test_viewers_see_their_institution_read_only_and_cannot_teach(app, db, unplaced):
    viewer = signed_in_client(app, db, "wati", "viewer", institution="LPKS Nisfisano")
    html = viewer.get("/staff/belum-dipahami").get_data(as_text=True)
    assert groups_on(html) == [("status", "gak tau")]
    assert "<form method=\"post\" action=\"/staff/belum-dipahami/ajari\"" not in html
    assert 'id="taught"' not in html
    token = csrf_from(html)
    refused = viewer.post("/staff/belum-dipahami/ajari",
                          data={"csrf_token": token, "question": "status",
                                "phrase": "gak tau", "meaning": "seeking"})
    assert refused.status_code == 403
    with db.session() as session:
        session.add(VocabularyEntry(reading="rating", phrase="lumayan", meaning="3",
                                    created_by="rina", created_at=NOW))
    with db.read_session() as session:
        entry_id = session.scalars(select(VocabularyEntry.id)).one()
    assert viewer.post(f"/staff/belum-dipahami/arti/{entry_id}/hapus",
                       data={"csrf_token": token}).status_code == 403
    with db.read_session() as session:
        assert learned_meanings(session) == {"status": {}, "yes_no": {},
                                             "rating": {"lumayan": "3"}, "nothing": {}}
        assert session.scalars(select(UnplacedReply).where(
            UnplacedReply.resolved_at.is_not(None))).all() == []


def test_groups_are_paged(app, db, unplaced):
    with db.session() as session:
        for i in range(55):
            record_unplaced(session, graduate_id=unplaced["graduates"][0], report_id=None,
                            message_id=None, question="help", text=f"kalimat {i}", now=NOW)
    client = signed_in_client(app, db, "rina", "staff")
    first = client.get("/staff/belum-dipahami").get_data(as_text=True)
    second = client.get("/staff/belum-dipahami?page=2").get_data(as_text=True)
    assert "Belum dipahami (58 kelompok)" in first
    assert len(groups_on(first)) == 50 and len(groups_on(second)) == 8
    assert not set(groups_on(first)) & set(groups_on(second))
    assert 'href="/staff/belum-dipahami?page=2"' in first
