"""Replies Kabar could not place: recorded, grouped across graduates, taught a meaning by staff
(resolving the group, audited, read back by the check-in) and, when asked, re-read into the
open reports they left empty."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.learning import (
    LearningError,
    count_groups,
    forget,
    learned_meaning,
    learned_meanings,
    phrase_key,
    record_unplaced,
    teach,
    unplaced_groups,
)
from bot.models import (
    REPORT_COMPLETED,
    REPORT_OPEN,
    AuditLog,
    CheckInRound,
    Graduate,
    ProgressReport,
    UnplacedReply,
    VocabularyEntry,
)
from tests.conftest import PG_URL
from tests.factories import make_cohort, make_graduates
from tests.test_summaries import wait_for_a_lock_wait

NOW = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)


@pytest.fixture
def people(db):
    """Menjahit 1 (3 graduates) and Bordir 1 (1, another institution), each with a report in
    an open round: ids of graduates and reports in that order."""
    with db.session() as session:
        sewing = make_cohort(session, "Menjahit 1")
        embroidery = make_cohort(session, "Bordir 1", "LPKS Nisfisano")
        graduates = make_graduates(session, sewing, 3) + make_graduates(
            session, embroidery, 1, first_phone=6281300000001)
        reports = []
        for graduate in graduates:
            round_ = session.scalar(select(CheckInRound).where(
                CheckInRound.cohort_id == graduate.cohort_id))
            if round_ is None:
                round_ = CheckInRound(cohort_id=graduate.cohort_id,
                                      scheduled_for=NOW - timedelta(days=1))
                session.add(round_)
                session.flush()
            report = ProgressReport(round_id=round_.id, graduate_id=graduate.id,
                                    status=REPORT_OPEN, raw_answers={})
            session.add(report)
            session.flush()
            reports.append(report.id)
        return [g.id for g in graduates], reports


def record(db, graduate_id, report_id, question, text, minutes=0):
    with db.session() as session:
        record_unplaced(session, graduate_id=graduate_id, report_id=report_id, message_id=None,
                        question=question, text=text, now=NOW + timedelta(minutes=minutes))


def test_a_phrase_is_the_reply_s_words_without_case_punctuation_or_stretched_letters():
    assert phrase_key("Blm dpt KERJAAA!! 🙏") == "blm dpt kerja"
    assert phrase_key("  blm   dpt kerja ") == "blm dpt kerja"
    assert phrase_key("🙏🙏 ...") == ""
    long = phrase_key("kerja " * 100)
    assert len(long) <= 200 and not long.endswith(" ")
    assert phrase_key(long) == long


def test_unplaced_replies_are_grouped_by_question_and_phrase_across_graduates(db, people):
    graduates, reports = people
    record(db, graduates[0], reports[0], "status", "Lagi nyari2 kak", 1)
    record(db, graduates[1], reports[1], "status", "lagi nyari2 kakkk!", 2)
    record(db, graduates[1], reports[1], "status", "lagi nyari2 kak", 3)  # asked again
    record(db, graduates[2], reports[2], "rating", "lumayan lah", 4)
    record(db, graduates[3], reports[3], "status", "LAGI NYARI2 KAK", 5)
    record(db, graduates[0], reports[0], "employer", "pabrik", 6)  # free text: never kept
    record(db, graduates[0], reports[0], "status", "👍", 7)  # no words: nothing to teach

    with db.read_session() as session:
        groups = unplaced_groups(session)
        assert count_groups(session) == 2
        first, second = groups
        assert (first.question, first.phrase, first.replies, first.graduates) == (
            "status", "lagi nyari2 kak", 4, 3)
        assert first.latest.text == "LAGI NYARI2 KAK"
        assert first.graduate_name == "Lulusan Bordir 1 1"
        assert first.open_reports == 3
        assert first.meanings == ("employed", "self_employed", "seeking", "studying")
        assert (second.question, second.phrase, second.replies) == ("rating", "lumayan lah", 1)

        # A viewer's institution: only the replies of its own graduates.
        sewing = session.get(Graduate, graduates[0]).cohort_id
        mine = unplaced_groups(session, [sewing])
        assert [(g.phrase, g.replies, g.graduates) for g in mine] == [
            ("lagi nyari2 kak", 3, 2), ("lumayan lah", 1, 1)]
        assert mine[0].latest.text == "lagi nyari2 kak"
        assert count_groups(session, [sewing]) == 2

        assert [g.phrase for g in unplaced_groups(session, limit=1, offset=1)] == ["lumayan lah"]


def test_teaching_a_phrase_resolves_its_group_is_audited_and_is_read_back(db, settings, people):
    graduates, reports = people
    record(db, graduates[0], reports[0], "uses_skill", "iya dong", 1)
    record(db, graduates[1], reports[1], "job_alerts", "iyaa dong!", 2)  # same reading
    record(db, graduates[2], reports[2], "status", "iya dong", 3)  # another reading

    with db.session() as session:
        result = teach(session, settings, question="uses_skill", phrase="iya dong",
                       meaning="yes", actor="rina", now=NOW, reread=False)
    assert (result.reading, result.phrase, result.meaning) == ("yes_no", "iya dong", "yes")
    assert (result.old_meaning, result.resolved, result.reports_changed) == (None, 2, 0)

    with db.read_session() as session:
        assert [(g.question, g.phrase) for g in unplaced_groups(session)] == [
            ("status", "iya dong")]
        resolved = session.scalars(select(UnplacedReply).where(
            UnplacedReply.resolved_at.is_not(None))).all()
        assert {r.entry_id for r in resolved} == {result.entry_id} and len(resolved) == 2
        assert learned_meanings(session)["yes_no"] == {"iya dong": "yes"}
        assert learned_meaning(session, "job_alerts", "Iyaaa dong 😊") == "yes"
        assert learned_meaning(session, "status", "iya dong") is None
        entry = session.scalars(select(AuditLog).where(
            AuditLog.action == "vocabulary.taught")).one()
        assert entry.actor == "rina"
        assert entry.detail | {} == {
            "question": "uses_skill", "phrase": "iya dong", "reading": "yes_no",
            "meaning": "yes", "old_meaning": None, "resolved": 2, "reread": False,
            "reports_changed": 0}
        # Nothing was re-read: the reports are as they were.
        assert session.get(ProgressReport, reports[0]).uses_training_skill is None


def test_teaching_again_changes_the_meaning_and_audits_the_old_one(db, settings, people):
    with db.session() as session:
        teach(session, settings, question="rating", phrase="lumayan", meaning="3", actor="rina",
              now=NOW, reread=False)
    with db.session() as session:
        again = teach(session, settings, question="rating", phrase="LUMAYANNN", meaning="4",
                      actor="budi", now=NOW, reread=False)
    assert (again.old_meaning, again.meaning) == ("3", "4")
    with db.read_session() as session:
        entry = session.scalars(select(VocabularyEntry)).one()
        assert (entry.phrase, entry.meaning, entry.created_by) == ("lumayan", "4", "budi")
        last = session.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
        assert (last.detail["old_meaning"], last.detail["meaning"]) == ("3", "4")


def test_re_reading_fills_only_open_reports_whose_field_is_empty(db, settings, people):
    graduates, reports = people
    with db.session() as session:
        done = session.get(ProgressReport, reports[1])
        done.status = REPORT_COMPLETED
        answered = session.get(ProgressReport, reports[2])
        answered.employment_status = "employed"
    for i in range(4):
        record(db, graduates[i], reports[i], "status", "lagi nganggur kak", i)

    with db.session() as session:
        result = teach(session, settings, question="status", phrase="lagi nganggur kak",
                       meaning="seeking", actor="rina", now=NOW, reread=True)
    assert (result.resolved, result.reports_changed) == (4, 2)

    with db.read_session() as session:
        statuses = [session.get(ProgressReport, r) for r in reports]
        assert [r.employment_status for r in statuses] == [
            "seeking", None, "employed", "seeking"]
        assert statuses[0].readings == {"employment_status": "learned"}
        assert statuses[2].readings is None


def test_a_meaning_the_question_cannot_have_is_refused_and_nothing_changes(db, settings, people):
    graduates, reports = people
    record(db, graduates[0], reports[0], "rating", "mantap", 1)
    with db.session() as session:
        with pytest.raises(LearningError, match="'employed' is not a meaning for the question "
                                                "'rating': one of 1, 2, 3, 4, 5"):
            teach(session, settings, question="rating", phrase="mantap", meaning="employed",
                  actor="rina", now=NOW, reread=True)
        with pytest.raises(LearningError, match="unknown question 'employer'"):
            teach(session, settings, question="employer", phrase="mantap", meaning="yes",
                  actor="rina", now=NOW, reread=True)
        with pytest.raises(LearningError, match="no words"):
            teach(session, settings, question="rating", phrase="👍", meaning="5",
                  actor="rina", now=NOW, reread=True)
    with db.read_session() as session:
        assert count_groups(session) == 1
        assert session.scalars(select(VocabularyEntry)).all() == []


def test_forgetting_a_meaning_deletes_it_and_is_audited(db, settings, people):
    graduates, reports = people
    record(db, graduates[0], reports[0], "help", "gak ada sih", 1)
    with db.session() as session:
        taught = teach(session, settings, question="help", phrase="gak ada sih",
                       meaning="nothing", actor="rina", now=NOW, reread=False)
        assert learned_meanings(session)["nothing"] == {"gak ada sih": "nothing"}
    with db.session() as session:
        assert forget(session, entry_id=taught.entry_id, actor="budi")
        assert learned_meanings(session)["nothing"] == {}
        assert not forget(session, entry_id=taught.entry_id, actor="budi")
    with db.read_session() as session:
        assert session.scalars(select(VocabularyEntry)).all() == []
        reply = session.scalars(select(UnplacedReply)).one()
        assert reply.resolved_at is not None and reply.entry_id is None
        gone = session.scalars(select(AuditLog).where(
            AuditLog.action == "vocabulary.forgotten")).one()
        assert (gone.actor, gone.detail["phrase"], gone.detail["taught_by"]) == (
            "budi", "gak ada sih", "rina")


@pytest.mark.skipif(not PG_URL, reason="concurrent writers need PostgreSQL")
def test_two_people_teaching_one_phrase_at_once_leave_one_entry_with_the_later_meaning(
        db, settings, people):
    graduates, reports = people
    record(db, graduates[0], reports[0], "rating", "lumayan", 1)
    first = db.sessions()
    teach(first, settings, question="rating", phrase="lumayan", meaning="3", actor="rina",
          now=NOW, reread=False)
    results, errors = [], []

    def second():
        try:
            with db.session() as session:
                results.append(teach(session, settings, question="rating", phrase="lumayan",
                                     meaning="4", actor="budi", now=NOW, reread=False))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=second)
    worker.start()
    wait_for_a_lock_wait(db, "the second teacher to wait for the first")
    first.commit()
    first.close()
    worker.join(10)
    assert not worker.is_alive() and not errors
    assert (results[0].old_meaning, results[0].meaning, results[0].resolved) == ("3", "4", 0)
    with db.read_session() as session:
        assert learned_meanings(session)["rating"] == {"lumayan": "4"}
        assert len(session.scalars(select(AuditLog).where(
            AuditLog.action == "vocabulary.taught")).all()) == 2


def test_a_meaning_taught_elsewhere_is_read_from_the_next_transaction(db, settings, people):
    reader = db.read_sessions()  # a long-lived session, as a worker's
    try:
        assert learned_meanings(reader)["rating"] == {}
        with db.session() as session:
            teach(session, settings, question="rating", phrase="mantul", meaning="5",
                  actor="rina", now=NOW, reread=False)
        reader.commit()
        assert learned_meaning(reader, "rating", "Mantulll!") == "5"
    finally:
        reader.close()
