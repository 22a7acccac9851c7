"""The learning loop end to end: a reply the check-in cannot place is recorded, staff teach
its meaning, and every later reply with those words is read with it."""

from __future__ import annotations

from sqlalchemy import select

from bot.learning import learned_meanings, teach, unplaced_groups
from bot.models import AuditLog, UnplacedReply, utcnow
from tests.factories import make_graduates
from tests.test_checkin_flow import GraduateChat, answer
from tests.test_checkin_flow import grad as grad  # noqa: F401 (the fixture)


def test_a_reply_kabar_could_not_place_is_recorded_for_staff(grad, db):
    grad.begin()
    answer(grad, "asdfghjkl", "checkin.hint_status")
    answer(grad, "3", "checkin.ask_job_alerts")
    answer(grad, "gaskeun", "checkin.hint_job_alerts")
    report_id = grad.report().id
    with db.session() as session:
        rows = session.scalars(select(UnplacedReply).order_by(UnplacedReply.id)).all()
        assert [(r.question, r.phrase, r.graduate_id) for r in rows] == [
            ("status", "asdfghjkl", grad.id), ("job_alerts", "gaskeun", grad.id)]
        assert rows[0].message_id is not None and rows[0].report_id == report_id


def test_a_meaning_taught_once_reads_every_later_reply(grad, client, settings, db):
    grad.begin()
    answer(grad, "3", "checkin.ask_job_alerts")
    answer(grad, "Gaskeun!!", "checkin.hint_job_alerts")
    with db.session() as session:
        cohort_id = grad.cohort_id
        [group] = unplaced_groups(session)
        assert (group.question, group.phrase) == ("job_alerts", "gaskeun")
        result = teach(session, settings, question="job_alerts", phrase="gaskeun",
                       meaning="yes", actor="Bu Rina", now=utcnow(), reread=True)
        assert result.resolved == 1 and result.reports_changed == 1
        assert session.scalar(select(AuditLog.action).order_by(AuditLog.id.desc())) == \
            "vocabulary.taught"
    report = grad.report()
    assert report.wants_job_alerts is True and report.readings["wants_job_alerts"] == "learned"
    # The graduate goes on from where they are; the question already answered is passed over.
    answer(grad, "4", "checkin.ask_help")
    # Another graduate's "gaskeun kak" is understood at once, as taught.
    with db.session() as session:
        from bot.models import Cohort
        other = make_graduates(session, session.get(Cohort, cohort_id), count=1,
                               first_phone=6281200000050)[0]
    chat = GraduateChat(client, settings, db, other)
    chat.begin()
    answer(chat, "3", "checkin.ask_job_alerts")
    answer(chat, "gaskeunnn kak", "checkin.ask_rating")
    assert chat.report().wants_job_alerts is True
    assert chat.report().readings["wants_job_alerts"] == "learned"
    with db.session() as session:
        assert learned_meanings(session)["yes_no"] == {"gaskeun": "yes"}
