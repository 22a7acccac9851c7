"""The check-in conversation, driven through the signed webhook like a graduate on WhatsApp."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from twilio.request_validator import RequestValidator

from bot.catalog import text
from bot.conversations.checkin import (
    ASK_EMPLOYER,
    ASK_STATUS,
    STATES,
    begin_checkin,
)
from bot.models import (
    INBOUND,
    OUTBOUND,
    CheckInRound,
    Conversation,
    Graduate,
    JobOpening,
    Message,
    ProgressReport,
    utcnow,
)
from tests.conftest import TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates

NAME = "Lulusan Menjahit 1 1"


class GraduateChat:
    """The graduate under test and the ways to talk to Kabar as them."""

    def __init__(self, client, settings, db, graduate: Graduate) -> None:
        self.client, self.settings, self.db = client, settings, db
        self.id, self.phone, self.cohort_id = graduate.id, graduate.phone, graduate.cohort_id

    def send(self, body: str = "", **extra: str) -> None:
        form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": f"whatsapp:{self.phone}",
                "To": "whatsapp:+14155238886", "Body": body, "NumMedia": "0", **extra}
        signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
            self.settings.app.public_url + "/twilio/inbound", form)
        answer = self.client.post("/twilio/inbound", data=form,
                                  headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200, answer.data

    def begin(self) -> int:
        """Start a round for the cohort as the scheduler would; return the round id."""
        with self.db.session() as session:
            round_ = CheckInRound(cohort_id=self.cohort_id, scheduled_for=utcnow(),
                                  trigger="schedule")
            session.add(round_)
            session.flush()
            assert begin_checkin(session, self.settings, session.get(Graduate, self.id),
                                 round_) is not None
            return round_.id

    def replies(self) -> list[str]:
        with self.db.session() as session:
            return list(session.scalars(select(Message.body).where(
                Message.graduate_id == self.id, Message.direction == OUTBOUND)
                .order_by(Message.id)))

    def last_reply(self) -> str:
        return self.replies()[-1]

    def report(self) -> ProgressReport:
        with self.db.session() as session:
            return session.scalars(select(ProgressReport).where(
                ProgressReport.graduate_id == self.id).order_by(ProgressReport.id.desc())).first()

    def conversation(self) -> Conversation | None:
        with self.db.session() as session:
            return session.get(Conversation, self.id)


@pytest.fixture
def grad(client, settings, db) -> GraduateChat:
    with db.session() as session:
        cohort = make_cohort(session)
        graduate = make_graduates(session, cohort, count=1)[0]
    return GraduateChat(client, settings, db, graduate)


def t(key: str, **values) -> str:
    return text("id", key, **values)


def answer(grad: GraduateChat, reply: str, expect: str) -> None:
    grad.send(reply)
    assert grad.last_reply() == t(expect, name=NAME), f"after {reply!r}"


def test_prompt_is_queued_as_a_template_once_per_round(grad, db, settings):
    round_id = grad.begin()
    with db.session() as session:
        prompt = session.scalar(select(Message).where(Message.kind == "checkin"))
        assert prompt.body == t("checkin.prompt", name=NAME, cohort="Menjahit 1")
        assert prompt.dedupe_key == f"checkin:{round_id}:{grad.id}"
        assert prompt.round_id == round_id
        assert prompt.content_variables == {"1": NAME, "2": "Menjahit 1"}
        again = begin_checkin(session, settings, session.get(Graduate, grad.id),
                              session.get(CheckInRound, round_id))
        assert again is None
    assert len(grad.replies()) == 1
    assert grad.conversation().state == ASK_STATUS
    assert grad.report().status == "open"


def test_employed_with_employer_in_the_same_message_skips_where(grad):
    grad.begin()
    answer(grad, "alhamdulillah sudah kerja di pabrik sepatu", "checkin.ask_uses_skill")
    answer(grad, "iya", "checkin.ask_rating")
    answer(grad, "4", "checkin.ask_help")
    answer(grad, "tidak ada kak", "checkin.thanks")
    report = grad.report()
    assert report.employment_status == "employed"
    assert report.employer == "pabrik sepatu"
    assert report.uses_training_skill is True
    assert report.skill_rating == 4
    assert report.needs_help is None
    assert report.status == "completed"
    assert report.responded_at is not None and report.completed_at is not None
    assert report.raw_answers == {"status": ["alhamdulillah sudah kerja di pabrik sepatu"],
                                  "uses_skill": ["iya"], "rating": ["4"],
                                  "help": ["tidak ada kak"]}
    assert grad.conversation() is None
    assert "LOWONGAN" in grad.last_reply()


def test_employed_is_asked_where_then_whether_the_job_uses_the_skill(grad):
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    answer(grad, "PT Sepatu Batang", "checkin.ask_uses_skill")
    answer(grad, "tdk", "checkin.ask_rating")
    answer(grad, "dua", "checkin.ask_help")
    answer(grad, "mesin jahit di rumah rusak", "checkin.thanks")
    report = grad.report()
    assert (report.employment_status, report.employer) == ("employed", "PT Sepatu Batang")
    assert report.uses_training_skill is False
    assert report.skill_rating == 2
    assert report.needs_help == "mesin jahit di rumah rusak"


def test_self_employed_is_asked_what_business(grad):
    grad.begin()
    answer(grad, "2️⃣", "checkin.ask_business")
    answer(grad, "jahit baju di rumah", "checkin.ask_rating")
    answer(grad, "5", "checkin.ask_help")
    answer(grad, "butuh modal untuk mesin obras", "checkin.thanks")
    report = grad.report()
    assert (report.employment_status, report.employer) == ("self_employed",
                                                          "jahit baju di rumah")
    assert report.uses_training_skill is None
    assert report.needs_help == "butuh modal untuk mesin obras"


def test_self_employed_naming_the_business_goes_straight_to_the_rating(grad):
    grad.begin()
    answer(grad, "jualan online", "checkin.ask_rating")
    assert grad.report().employer == "jualan online"


def test_seeking_is_asked_about_job_alerts(grad):
    grad.begin()
    answer(grad, "blm dpt kerja", "checkin.ask_job_alerts")
    answer(grad, "mau", "checkin.ask_rating")
    answer(grad, "3", "checkin.ask_help")
    answer(grad, "tidak", "checkin.thanks")
    report = grad.report()
    assert report.employment_status == "seeking"
    assert report.wants_job_alerts is True
    assert report.employer is None


def test_studying_goes_straight_to_the_rating(grad):
    grad.begin()
    answer(grad, "lanjut kuliah", "checkin.ask_rating")
    answer(grad, "4", "checkin.ask_help")
    answer(grad, "ga ada", "checkin.thanks")
    report = grad.report()
    assert report.employment_status == "studying"
    assert report.employer is None and report.wants_job_alerts is None


def test_the_status_question_is_never_dropped_hint_then_buttons_then_the_call_list(grad, db):
    grad.begin()
    answer(grad, "hmm gimana ya", "checkin.hint_status")
    assert grad.conversation().state == ASK_STATUS
    answer(grad, "entahlah", "checkin.status_buttons")  # second miss: the same as buttons
    with db.session() as session:
        buttons = session.scalars(select(Message).where(Message.kind == "status_buttons")).one()
        assert [b["title"] for b in buttons.meta["buttons"]] == [
            "Sudah bekerja", "Usaha sendiri", "Belum bekerja", "Sekolah/pelatihan"]
    grad.send("asdfghjkl")  # third miss: staff will call; the check-in goes on
    assert grad.last_reply() == t("checkin.status_later",
                                  question=t("checkin.ask_rating", name=NAME))
    assert grad.report().not_understood is True
    answer(grad, "tidak tahu", "checkin.hint_rating")
    answer(grad, "???", "checkin.ask_rating")  # no answer at all: asked again, not a miss
    answer(grad, "qwerty", "checkin.ask_help")
    answer(grad, "tidak ada", "checkin.thanks")
    report = grad.report()
    assert report.status == "completed"
    assert report.employment_status is None and report.skill_rating is None
    assert report.raw_answers["status"] == ["hmm gimana ya", "entahlah", "asdfghjkl"]
    assert report.raw_answers["rating"] == ["tidak tahu", "???", "qwerty"]


def test_a_placed_answer_after_one_miss_resets_the_count(grad):
    grad.begin()
    answer(grad, "asdfghjkl", "checkin.hint_status")
    answer(grad, "3", "checkin.ask_job_alerts")
    answer(grad, "entah", "checkin.hint_job_alerts")  # a fresh question gets its own two tries
    answer(grad, "ya", "checkin.ask_rating")
    assert grad.report().raw_answers["status"] == ["asdfghjkl", "3"]


def test_keywords_work_mid_flow_and_the_question_stays_open(grad, db):
    with db.session() as session:
        session.add(JobOpening(code="JHT01", title="Operator jahit", employer="PT Sepatu",
                               location="Batang", skill="menjahit"))
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    grad.send("lowongan")
    assert "JHT01" in grad.last_reply()
    assert grad.last_reply().endswith(
        t("checkin.again", question=t("checkin.again_employer")))  # in the same message
    grad.send("MENU")
    assert grad.last_reply() == t("menu") + "\n\n" + t(
        "checkin.again", question=t("checkin.again_employer"))
    conversation = grad.conversation()
    assert (conversation.state, conversation.misses) == (ASK_EMPLOYER, 0)
    answer(grad, "PT Sepatu", "checkin.ask_uses_skill")
    assert grad.report().raw_answers == {"status": ["1"], "employer": ["PT Sepatu"]}


def test_stop_mid_flow_ends_the_checkin_and_nothing_more_is_sent(grad, db, settings):
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    grad.send("BERHENTI")
    assert grad.last_reply() == t("optout_confirm")
    assert grad.conversation() is None
    report = grad.report()
    assert report.status == "unanswered" and report.closed_at is not None
    sent_before = len(grad.replies())
    grad.send("PT Sepatu")  # no conversation any more, and no menu to an opted-out graduate
    with db.session() as session:
        round_ = CheckInRound(cohort_id=grad.cohort_id, scheduled_for=utcnow(), trigger="manual")
        session.add(round_)
        session.flush()
        assert begin_checkin(session, settings, session.get(Graduate, grad.id), round_) is None
    assert len(grad.replies()) == sent_before
    with db.session() as session:
        optout = session.scalar(select(Message).where(Message.kind == "optout_confirm"))
        assert optout.status == "pending"  # the confirmation still goes out
        assert session.get(Graduate, grad.id).opted_out is True


def test_a_new_checkin_closes_the_previous_open_report_as_unanswered(grad):
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    first = grad.report()
    grad.begin()
    with grad.db.session() as session:
        old = session.get(ProgressReport, first.id)
        assert old.status == "unanswered" and old.closed_at is not None
        assert old.raw_answers == {"status": ["1"]}  # what was answered is kept
        new = session.scalars(select(ProgressReport).where(ProgressReport.status == "open")).one()
    conversation = grad.conversation()
    assert (conversation.state, conversation.report_id) == (ASK_STATUS, new.id)
    answer(grad, "2", "checkin.ask_business")


def test_media_reply_asks_to_type_and_keeps_the_question(grad, db):
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    grad.send("", NumMedia="1", MediaUrl0="https://api.twilio.com/media/ME1",
              MediaContentType0="audio/ogg")
    assert grad.last_reply() == t("media_please_type") + "\n\n" + t(
        "checkin.again", question=t("checkin.again_employer"))
    with db.session() as session:
        voice = session.scalars(select(Message).where(Message.direction == INBOUND)
                                .order_by(Message.id.desc())).first()
        assert (voice.media_url, voice.media_type) == ("https://api.twilio.com/media/ME1",
                                                       "audio/ogg")
    conversation = grad.conversation()
    assert (conversation.state, conversation.misses) == (ASK_EMPLOYER, 0)
    answer(grad, "konveksi Bu Siti", "checkin.ask_uses_skill")


def test_an_expired_checkin_no_longer_takes_answers(grad, db, settings):
    grad.begin()
    days = settings.scheduler.checkin_expires_after_days + 1
    with db.session() as session:
        session.execute(update(ProgressReport).values(created_at=utcnow() - timedelta(days=days)))
    grad.send("1")
    assert grad.last_reply() == t("menu")
    assert grad.report().status == "unanswered"
    assert grad.conversation() is None


def test_every_state_has_its_texts_and_skips_somewhere_known():
    for name, question in STATES.items():
        assert question.skip_to in STATES or question.skip_to == "end", name
        assert question.answer.__doc__, f"{name}: one-line docstring"
