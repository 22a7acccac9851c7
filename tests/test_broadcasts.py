"""Job openings and announcements: who receives them, the MINAT code, the audit trail."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from bot.broadcasts import (
    CODE_ALPHABET,
    BroadcastError,
    JobDraft,
    create_announcement,
    create_job_broadcast,
    preview_recipients,
)
from bot.models import (
    MSG_PENDING,
    AuditLog,
    Broadcast,
    CheckInRound,
    JobOpening,
    Message,
    ProgressReport,
)
from tests.factories import make_cohort, make_graduates

KITB = dict(title="Operator jahit", employer="Pabrik sepatu KITB", location="Batang")


@pytest.fixture
def cohorts(db):
    """Menjahit 1 (3), Menjahit 2 (2), Bordir 1 (2, one with her own skill 'menjahit payet')."""
    with db.session() as session:
        m1 = make_cohort(session, "Menjahit 1", skill="Menjahit")
        m2 = make_cohort(session, "Menjahit 2", skill="Menjahit")
        b1 = make_cohort(session, "Bordir 1", "LPKS Nisfisano", skill="Bordir")
        grads = {
            "m1": make_graduates(session, m1, 3, first_phone=6281200000101),
            "m2": make_graduates(session, m2, 2, first_phone=6281200000201),
            "b1": make_graduates(session, b1, 2, first_phone=6281200000301),
        }
        grads["b1"][1].skill = "Menjahit payet"
        return {key: [g.id for g in value] for key, value in grads.items()}


def ids(graduates) -> list[int]:
    return sorted(g.id for g in graduates)


def draft(**overrides) -> JobDraft:
    return JobDraft(**{**KITB, **overrides})


def record_status(session, graduate_id, cohort_id, when, status):
    round_ = session.scalar(select(CheckInRound).where(CheckInRound.cohort_id == cohort_id,
                                                       CheckInRound.scheduled_for == when))
    if round_ is None:
        round_ = CheckInRound(cohort_id=cohort_id, scheduled_for=when, trigger="schedule")
        session.add(round_)
        session.flush()
    session.add(ProgressReport(round_id=round_.id, graduate_id=graduate_id, status="completed",
                               employment_status=status, raw_answers={}))
    session.flush()


def test_targets_the_named_cohorts(db, cohorts):
    with db.session() as session:
        assert ids(preview_recipients(session, draft(cohort_names=["menjahit 2"]))) == cohorts["m2"]
        both = preview_recipients(session, draft(cohort_names=["Menjahit 1", "Bordir 1"]))
        assert ids(both) == sorted(cohorts["m1"] + cohorts["b1"])


def test_all_active_cohorts_when_none_named(db, cohorts):
    from bot.models import Cohort

    with db.session() as session:
        session.scalar(select(Cohort).where(Cohort.name == "Menjahit 2")).active = False
    with db.session() as session:
        assert ids(preview_recipients(session, draft())) == sorted(cohorts["m1"] + cohorts["b1"])


def test_skips_graduates_who_opted_out_or_left(db, cohorts):
    from bot.models import Graduate

    with db.session() as session:
        session.get(Graduate, cohorts["m1"][0]).opted_out = True
        session.get(Graduate, cohorts["m1"][1]).active = False
    with db.session() as session:
        assert ids(preview_recipients(session, draft(cohort_names=["Menjahit 1"]))) == \
            cohorts["m1"][2:]


def test_skill_matches_part_of_the_graduate_or_cohort_skill(db, cohorts):
    with db.session() as session:
        sewing = preview_recipients(session, draft(skill="JAHIT"))
        # both Menjahit cohorts, plus the Bordir graduate whose own skill is sewing
        assert ids(sewing) == sorted(cohorts["m1"] + cohorts["m2"] + [cohorts["b1"][1]])
        assert ids(preview_recipients(session, draft(skill="bordir"))) == cohorts["b1"]
        assert preview_recipients(session, draft(skill="las")) == []
        assert preview_recipients(session, draft(skill="%")) == []  # no wildcards


def test_status_filter_uses_the_latest_answered_round(db, cohorts):
    m1 = cohorts["m1"]
    with db.session() as session:
        from bot.models import Graduate

        cohort_id = session.get(Graduate, m1[0]).cohort_id
        nov = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
        dec = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
        # first: seeking, then employed (latest) -> employed
        record_status(session, m1[0], cohort_id, nov, "seeking")
        record_status(session, m1[0], cohort_id, dec, "employed")
        # second: employed, then seeking (latest) -> seeking
        record_status(session, m1[1], cohort_id, nov, "employed")
        record_status(session, m1[1], cohort_id, dec, "seeking")
        # third: seeking, then a round left unanswered -> still seeking
        record_status(session, m1[2], cohort_id, nov, "seeking")
        record_status(session, m1[2], cohort_id, dec, None)
    with db.session() as session:
        seeking = preview_recipients(session, draft(statuses=["seeking"]))
        assert ids(seeking) == [m1[1], m1[2]]
        employed = preview_recipients(session, draft(statuses=["employed"]))
        assert ids(employed) == [m1[0]]
        either = preview_recipients(session, draft(statuses=["employed", "seeking"],
                                                   cohort_names=["Menjahit 1"]))
        assert ids(either) == sorted(m1)


def test_job_broadcast_queues_one_message_per_recipient_with_the_code(db, settings, cohorts):
    with db.session() as session:
        job, bc = create_job_broadcast(session, settings,
                                       draft(cohort_names=["Menjahit 1", "Menjahit 2"],
                                             deadline=date(2099, 6, 30)),
                                       actor="betty")
        job_id, code, bc_id = job.id, job.code, bc.id
    with db.session() as session:
        bc = session.get(Broadcast, bc_id)
        assert bc.kind == "job_opening" and bc.job_id == job_id
        assert bc.recipient_count == 5 and bc.created_by == "betty"
        messages = session.scalars(select(Message).where(Message.broadcast_id == bc_id)).all()
        assert sorted(m.graduate_id for m in messages) == sorted(cohorts["m1"] + cohorts["m2"])
        for m in messages:
            assert m.kind == "job_opening" and m.status == MSG_PENDING
            assert f"MINAT {code}" in m.body
            assert "Operator jahit" in m.body and "30/06/2099" in m.body
            assert m.content_variables == {"1": "Operator jahit", "2": "Pabrik sepatu KITB",
                                           "3": "Batang", "4": "30/06/2099", "5": code}
            assert m.dedupe_key == f"broadcast:{bc_id}:{m.graduate_id}"
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "broadcast.job"))
        assert entry.actor == "betty"
        assert entry.detail["code"] == code and entry.detail["recipients"] == 5


def test_body_is_in_the_graduates_language(db, settings, cohorts):
    from bot.models import Graduate

    with db.session() as session:
        session.get(Graduate, cohorts["m2"][0]).language = "en"
    with db.session() as session:
        job, bc = create_job_broadcast(session, settings, draft(cohort_names=["Menjahit 2"]),
                                       actor="cli")
        bodies = {m.graduate_id: m.body for m in session.scalars(
            select(Message).where(Message.broadcast_id == bc.id))}
    assert bodies[cohorts["m2"][0]] != bodies[cohorts["m2"][1]]
    assert all(f"MINAT {job.code}" in body for body in bodies.values())


def test_job_codes_are_unique_and_easy_to_type(db, settings, cohorts):
    with db.session() as session:
        codes = [create_job_broadcast(session, settings, draft(), actor="cli")[0].code
                 for _ in range(30)]
    assert len(set(codes)) == 30
    for code in codes:
        assert len(code) == 5 and set(code) <= set(CODE_ALPHABET)
        assert not set(code) & set("0O1I")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(JobOpening)) == 30


@pytest.mark.parametrize("overrides, field", [
    ({"title": "  "}, "title"),
    ({"employer": ""}, "employer"),
    ({"location": "x" * 201}, "location"),
    ({"deadline": date(2020, 1, 1)}, "deadline"),
    ({"statuses": ["retired"]}, "status"),
    ({"cohort_names": ["Menjahit 9"]}, "cohort"),
])
def test_validation_errors_name_the_field(db, settings, cohorts, overrides, field):
    with db.session() as session, pytest.raises(BroadcastError) as err:
        create_job_broadcast(session, settings, draft(**overrides), actor="cli")
    assert str(err.value).startswith(field)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(JobOpening)) == 0


def test_no_recipients_is_an_error_and_creates_nothing(db, settings, cohorts):
    with db.session() as session, pytest.raises(BroadcastError, match="recipients"):
        create_job_broadcast(session, settings, draft(skill="las listrik"), actor="cli")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Broadcast)) == 0


def test_deadline_today_is_accepted_and_none_reads_until_filled(db, settings, cohorts):
    today = datetime.now(UTC).astimezone(settings.tz).date()
    with db.session() as session:
        job, _ = create_job_broadcast(session, settings, draft(deadline=today), actor="cli")
        assert job.deadline == today
        _, bc = create_job_broadcast(session, settings, draft(deadline=None), actor="cli")
        body = session.scalar(select(Message.body).where(Message.broadcast_id == bc.id))
    assert "sampai terisi" in body


def test_announcement_goes_to_each_cohort_member(db, settings, cohorts):
    with db.session() as session:
        bc = create_announcement(session, settings, ["Bordir 1"],
                                 "Pelatihan lanjutan dibuka minggu depan.", actor="betty")
        messages = session.scalars(select(Message).where(Message.broadcast_id == bc.id)).all()
        assert bc.kind == "announcement" and bc.recipient_count == 2
        assert sorted(m.graduate_id for m in messages) == cohorts["b1"]
        assert all("Pelatihan lanjutan dibuka" in m.body and "Bordir 1" in m.body
                   for m in messages)
        assert {m.kind for m in messages} == {"announcement"}
        assert session.scalar(select(AuditLog.action)) == "broadcast.announcement"


def test_announcement_must_have_text(db, settings, cohorts):
    with db.session() as session, pytest.raises(BroadcastError, match="^text"):
        create_announcement(session, settings, None, "   ", actor="cli")
