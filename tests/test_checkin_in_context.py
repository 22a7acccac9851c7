"""Replies read in context: what the bot asked last, a job opening just sent, interruptions,
pings, answers that name no workplace, and the status question that is never dropped."""

from __future__ import annotations

from sqlalchemy import select

from bot.broadcasts import JobDraft, create_job_broadcast
from bot.conversations.checkin import (
    ASK_EMPLOYER,
    ASK_JOB_ALERTS,
    ASK_RATING,
    ASK_STATUS,
    ASK_USES_SKILL,
)
from bot.models import OUTBOUND, Graduate, Interest, JobOpening, Message
from tests.test_checkin_flow import NAME, GraduateChat, answer, t
from tests.test_checkin_flow import grad as grad  # noqa: F401 (the fixture)


def again(key: str) -> str:
    return t("checkin.again", question=t(key, name=NAME))


def send_opening(grad: GraduateChat, db, settings, title="Operator jahit") -> str:
    with db.session() as session:
        cohort = session.get(Graduate, grad.id).cohort.name
        job, _ = create_job_broadcast(session, settings, JobDraft(
            title=title, employer="PT Pan Brothers", location="Batang",
            cohort_names=[cohort]), actor="staff")
        return job.code


def interests(db, grad) -> list[str]:
    with db.session() as session:
        return list(session.scalars(
            select(JobOpening.code).join(Interest, Interest.job_id == JobOpening.id)
            .where(Interest.graduate_id == grad.id)))


def state(grad) -> tuple[str, int]:
    conversation = grad.conversation()
    return conversation.state, conversation.misses


def test_a_ping_and_a_mash_do_not_drop_the_status_question(grad):
    """"p", then "asdfghjkl", then the real answer: it is the status, never a rating."""
    grad.begin()
    answer(grad, "p", "checkin.ask_status")  # a ping is no answer: asked again, no miss
    assert state(grad) == (ASK_STATUS, 0)
    answer(grad, "asdfghjkl", "checkin.hint_status")
    answer(grad, "blm dpt kerja kak", "checkin.ask_job_alerts")
    report = grad.report()
    assert report.employment_status == "seeking" and report.skill_rating is None
    assert report.readings == {"employment_status": "words"}


def test_a_status_told_later_is_taken_as_the_status_never_as_a_rating(grad):
    grad.begin()
    for reply in ("qwerty", "zzzz", "xkcd"):  # hint, buttons, then the call list
        grad.send(reply)
    assert grad.report().not_understood and state(grad)[0] == ASK_RATING
    answer(grad, "blm dpt kerja kak", "checkin.ask_job_alerts")  # asked: a rating 1-5
    report = grad.report()
    assert (report.employment_status, report.skill_rating) == ("seeking", None)
    assert report.not_understood is False and report.status_guessed is True
    answer(grad, "gelem", "checkin.ask_rating")  # the branch the status opened, then the rest
    answer(grad, "papat", "checkin.ask_help")
    answer(grad, "mboten wonten", "checkin.thanks")
    report = grad.report()
    assert (report.wants_job_alerts, report.skill_rating, report.needs_help) == (True, 4, None)


def test_a_tapped_button_is_the_answer(grad, db, settings):
    grad.begin()
    grad.send("hmm gmn ya")
    grad.send("bingung kak")
    with db.session() as session:
        buttons = session.scalars(select(Message).where(
            Message.graduate_id == grad.id, Message.kind == "status_buttons")).one()
        # Sent in-session as the configured twilio/quick-reply content, ids 1-4.
        assert buttons.content_sid == settings.twilio.templates.get("status_buttons")
        assert [b["id"] for b in buttons.meta["buttons"]] == ["1", "2", "3", "4"]
    answer_after_tap = grad.send("", ButtonPayload="3", ButtonText="Belum bekerja")
    assert answer_after_tap is None
    assert grad.last_reply() == t("checkin.ask_job_alerts")
    report = grad.report()
    assert report.employment_status == "seeking"
    assert report.readings["employment_status"] == "button"


def test_interest_with_the_code_anywhere_in_the_message(grad, db, settings):
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    code = send_opening(grad, db, settings)
    grad.send(f"minat kak {code}")
    assert interests(db, grad) == [code]
    reply = grad.last_reply()
    assert reply.startswith(t("interest.recorded", title="Operator jahit",
                              employer="PT Pan Brothers", code=code))
    assert reply.endswith(again("checkin.again_employer"))  # in the same message
    assert state(grad) == (ASK_EMPLOYER, 0)


def test_minat_with_words_after_the_code(grad, db, settings):
    code = send_opening(grad, db, settings)
    grad.send(f"MINAT {code} ya kak")
    assert interests(db, grad) == [code]


def test_minat_without_a_code_right_after_one_opening_means_that_opening(grad, db, settings):
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    code = send_opening(grad, db, settings)
    grad.send("sy minat kak")
    assert interests(db, grad) == [code]
    assert grad.last_reply().startswith(t(
        "interest.recorded_named", title="Operator jahit", employer="PT Pan Brothers",
        code=code))
    assert state(grad) == (ASK_EMPLOYER, 0)  # not taken as the workplace, no miss used
    assert grad.report().employer is None


def test_mau_answers_the_opening_only_right_after_it(grad, db, settings):
    grad.begin()
    answer(grad, "3", "checkin.ask_job_alerts")
    answer(grad, "mau kak", "checkin.ask_rating")  # the question asked last: job alerts
    assert grad.report().wants_job_alerts is True and interests(db, grad) == []
    code = send_opening(grad, db, settings)
    grad.send("gelem mas")  # the opening came last now
    assert interests(db, grad) == [code]
    assert state(grad) == (ASK_RATING, 0)


def test_two_recent_openings_and_no_code_asks_which(grad, db, settings):
    send_opening(grad, db, settings)
    send_opening(grad, db, settings, title="Penjahit")
    grad.send("minat")
    assert grad.last_reply() == t("interest.ask_code")
    assert interests(db, grad) == []


def test_an_unknown_code_is_named_as_typed(grad, db, settings):
    grad.send("MINAT ZZ9Q ya kak")
    assert grad.last_reply() == t("interest.unknown_code", code="ZZ9Q")


def test_after_the_menu_lowongan_or_a_voice_note_the_question_comes_back(grad):
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    for message in ({"body": "BANTUAN"}, {"body": "LOWONGAN"},
                    {"body": "", "NumMedia": "1", "MediaUrl0": "https://api.twilio.com/m/ME1",
                     "MediaContentType0": "audio/ogg"}):
        body = message.pop("body")
        grad.send(body, **message)
        assert grad.last_reply().endswith(again("checkin.again_employer"))
        assert state(grad) == (ASK_EMPLOYER, 0)


def test_nonsense_as_a_workplace_gets_one_follow_up_then_the_name_is_kept(grad):
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    answer(grad, "wkwkwk 🤣", "checkin.follow_up_employer")
    answer(grad, "PT Sritex Sukoharjo", "checkin.ask_uses_skill")
    report = grad.report()
    assert report.employer == "PT Sritex Sukoharjo"
    assert report.readings["employer"] == "followup"


def test_a_job_title_alone_is_kept_apart_and_the_workplace_asked(grad):
    grad.begin()
    answer(grad, "sudah kerja kak", "checkin.ask_employer")
    answer(grad, "operator jahit", "checkin.follow_up_employer")
    answer(grad, "di PT Pan Brothers", "checkin.ask_uses_skill")
    report = grad.report()
    assert (report.job_title, report.employer) == ("operator jahit", "PT Pan Brothers")


def test_a_job_title_with_the_workplace_in_the_status_answer(grad):
    grad.begin()
    answer(grad, "operator jahit di PT Pan Brothers", "checkin.ask_uses_skill")
    report = grad.report()
    assert (report.employment_status, report.job_title, report.employer) == (
        "employed", "operator jahit", "PT Pan Brothers")


def test_a_generic_word_twice_is_kept_as_given(grad):
    grad.begin()
    answer(grad, "kerja di pabrik", "checkin.ask_employer")  # "pabrik" names none
    answer(grad, "pabrik", "checkin.follow_up_employer")
    answer(grad, "pabrik garmen", "checkin.ask_uses_skill")
    assert grad.report().employer == "pabrik garmen"


def test_a_bare_generic_business_gets_the_follow_up(grad):
    grad.begin()
    answer(grad, "2", "checkin.ask_business")
    answer(grad, "dagang", "checkin.follow_up_business")
    answer(grad, "dagang batik online", "checkin.ask_rating")
    assert grad.report().employer == "dagang batik online"


def test_filler_ya_in_a_question_is_not_yes(grad):
    grad.begin()
    answer(grad, "1 di PT Pan Brothers", "checkin.ask_uses_skill")
    answer(grad, "hmm gmn ya", "checkin.hint_uses_skill")
    answer(grad, "beda bidang kak", "checkin.ask_rating")
    assert grad.report().uses_training_skill is False


def test_a_whole_check_in_in_javanese_krama(grad):
    grad.begin()
    answer(grad, "sampun nyambut damel wonten PT Pan Brothers", "checkin.ask_uses_skill")
    answer(grad, "inggih, kangge", "checkin.ask_rating")
    answer(grad, "sekawan", "checkin.ask_help")
    answer(grad, "mboten wonten, matur nuwun", "checkin.thanks")
    report = grad.report()
    assert (report.employment_status, report.employer, report.uses_training_skill,
            report.skill_rating, report.needs_help) == (
        "employed", "PT Pan Brothers", True, 4, None)
    assert report.readings == {"employment_status": "words", "employer": "words",
                               "uses_training_skill": "words", "skill_rating": "choice",
                               "needs_help": "words"}


def test_replies_to_the_graduate_go_out_as_one_message_each(grad, db):
    """An interruption's answer and the question asked again are one outbox row, so they
    cannot arrive in the wrong order."""
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    with db.session() as session:
        before = len(session.scalars(select(Message.id).where(
            Message.graduate_id == grad.id, Message.direction == OUTBOUND)).all())
    grad.send("MENU")
    with db.session() as session:
        after = len(session.scalars(select(Message.id).where(
            Message.graduate_id == grad.id, Message.direction == OUTBOUND)).all())
    assert after == before + 1
    assert state(grad) == (ASK_EMPLOYER, 0) and ASK_USES_SKILL != state(grad)[0]
    assert ASK_JOB_ALERTS  # the table still has the job-alert branch


def test_two_answers_in_one_message_skip_the_question_already_answered(grad):
    grad.begin()
    answer(grad, "udah kerja di konveksi Bu Siti, ilmunya kepake bgt", "checkin.ask_rating")
    report = grad.report()
    assert (report.employer, report.uses_training_skill) == ("konveksi Bu Siti", True)


def test_a_job_seeker_who_already_said_yes_to_openings_is_not_asked_again(grad):
    grad.begin()
    answer(grad, "durung kerjo mas, gelem dikirimi info loker", "checkin.ask_rating")
    report = grad.report()
    assert (report.employment_status, report.wants_job_alerts) == ("seeking", True)


def test_a_greeting_at_the_workplace_question_does_not_use_up_the_follow_up(grad):
    grad.begin()
    answer(grad, "2", "checkin.ask_business")
    answer(grad, "tes", "checkin.again_business")
    answer(grad, "dagang", "checkin.follow_up_business")
    answer(grad, "dagang batik", "checkin.ask_rating")
    assert grad.report().employer == "dagang batik"
