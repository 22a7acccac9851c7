"""The simulator page: pick a graduate, type as them, watch Kabar answer."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

from bot import create_app
from bot.catalog import text
from bot.conversations.checkin import ASK_JOB_ALERTS
from bot.models import INBOUND, OUTBOUND, Conversation, Graduate, Message, ProgressReport
from tests.factories import make_cohort, make_graduates
from tests.live import serve


@pytest.fixture
def app(settings, db):
    """The app as ``kabar demo`` serves it: the simulator answers loopback without sign-in."""
    app = create_app(settings, db, demo=True)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def roster(db) -> dict:
    with db.session() as session:
        cohort = make_cohort(session, name="Menjahit 3", join_code="MENJAHIT3")
        graduates = make_graduates(session, cohort, count=3)
        return {"cohort_id": cohort.id, "graduate_ids": [g.id for g in graduates]}


def test_page_lists_cohorts_and_graduates(client, roster):
    page = client.get("/simulator/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Menjahit 3" in html and "Lulusan Menjahit 3 2" in html and "+6281200000003" in html


def test_start_checkin_button_prompts_the_whole_cohort(client, db, roster):
    answer = client.post(f"/simulator/api/cohorts/{roster['cohort_id']}/checkin")
    assert answer.status_code == 200
    assert answer.json["started"] is True and answer.json["prompts"] == 3
    with db.session() as session:
        assert len(session.scalars(select(ProgressReport)).all()) == 3
    assert client.post("/simulator/api/cohorts/999/checkin").status_code == 404


def test_a_reply_typed_in_the_simulator_advances_the_conversation(client, db, roster):
    graduate_id = roster["graduate_ids"][0]
    client.post(f"/simulator/api/cohorts/{roster['cohort_id']}/checkin")
    sent = client.post("/simulator/api/send", json={"graduate_id": graduate_id, "body": "3"})
    assert sent.status_code == 200 and sent.json["ok"] is True
    with db.session() as session:
        assert session.get(Conversation, graduate_id).state == ASK_JOB_ALERTS
        inbound = session.scalar(select(Message).where(Message.direction == INBOUND))
        assert inbound.twilio_sid.startswith("SMsim") and inbound.graduate_id == graduate_id

    chat = client.get(f"/simulator/api/messages?graduate_id={graduate_id}").json
    assert chat["graduate"]["name"] == "Lulusan Menjahit 3 1"
    assert [(m["direction"], m["kind"]) for m in chat["messages"]] == [
        (OUTBOUND, "checkin"), (INBOUND, "inbound"), (OUTBOUND, "reply")]
    assert chat["messages"][-1]["body"] == text("id", "checkin.ask_job_alerts")
    assert all(m["time"] and m["status"] for m in chat["messages"])
    newer = client.get(f"/simulator/api/messages?graduate_id={graduate_id}"
                       f"&after_id={chat['messages'][1]['id']}").json["messages"]
    assert [m["id"] for m in newer] == [chat["messages"][2]["id"]]


def test_media_from_the_simulator_is_asked_to_be_typed(client, db, roster):
    graduate_id = roster["graduate_ids"][1]
    client.post("/simulator/api/send", json={"graduate_id": graduate_id, "media": "sticker"})
    chat = client.get(f"/simulator/api/messages?graduate_id={graduate_id}").json["messages"]
    assert chat[0]["media_type"] == "image/webp"
    assert chat[-1]["body"] == text("id", "media_please_type")


def test_a_new_number_can_join_through_the_simulator(client, db, roster):
    client.post("/simulator/api/send", json={"phone": "0857-0000-0099", "body": "GABUNG menjahit3"})
    client.post("/simulator/api/send", json={"phone": "+6285700000099", "body": "Dewi Lestari"})
    chat = client.get("/simulator/api/messages?phone=085700000099").json
    assert chat["graduate"]["name"] == "Dewi Lestari"
    assert chat["graduate"]["active"] is False  # waits for staff approval in the console
    assert chat["messages"][-1]["body"] == text("id", "join.pending", name="Dewi Lestari")
    assert client.get("/simulator/api/messages?phone=hello").status_code == 400
    assert client.get("/simulator/api/messages?graduate_id=999").status_code == 404


@pytest.mark.parametrize("kind", ["twilio", "console"])
def test_simulator_does_not_exist_without_the_simulator_transport(settings, db, kind):
    app = create_app(settings.with_overrides(transport={"kind": kind}), db)
    client = app.test_client()
    assert client.get("/simulator/").status_code == 404
    assert client.post("/simulator/api/send", json={"phone": "+6281200000001",
                                                    "body": "halo"}).status_code == 404
    assert client.get("/healthz").status_code == 200


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_chatting_in_the_browser(app, db, roster):
    sync_api = pytest.importorskip("playwright.sync_api")
    graduate_id = roster["graduate_ids"][2]
    with serve(app) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(base + "/simulator/")
            page.fill("#search", "menjahit 3 3")
            assert page.locator(".grad:visible").count() == 1
            page.fill("#search", "")
            page.click(f".grad[data-id='{graduate_id}']")
            page.fill("#body", "halo kak")
            page.press("#body", "Enter")
            page.wait_for_selector(".bubble.out >> text=LOWONGAN", timeout=10_000)
            assert page.locator(".bubble.in").first.inner_text().count("halo kak") == 1
        finally:
            browser.close()
    with db.session() as session:
        assert session.get(Graduate, graduate_id).last_menu_at is not None


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_a_whole_checkin_in_the_browser(app, db, settings, roster):
    """A person starts a round from the page and answers every question as the graduate."""
    import threading

    from bot.dispatcher import Dispatcher

    sync_api = pytest.importorskip("playwright.sync_api")
    graduate_id = roster["graduate_ids"][0]
    stop = threading.Event()
    worker = threading.Thread(target=Dispatcher(settings, db).run_forever, args=(stop,),
                              daemon=True)
    worker.start()
    answers = [("sdh kerja kak", "Di mana Anda bekerja"),
               ("konveksi Bu Siti, Pekalongan", "memakai keterampilan"),
               ("iya", "seberapa mahir"),
               ("4️⃣", "kendala"),
               ("gak ada", "Terima kasih")]
    try:
        with serve(app) as base, sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            try:
                page = browser.new_page()
                page.goto(base + "/simulator/")
                page.click(f".grad[data-id='{graduate_id}']")
                page.click(f".startround[data-cohort-id='{roster['cohort_id']}']")
                page.wait_for_selector(".bubble.out >> text=Bagaimana status kerja",
                                       timeout=10_000)
                for reply, next_question in answers:
                    page.fill("#body", reply)
                    page.press("#body", "Enter")
                    page.wait_for_selector(f".bubble.out >> text={next_question}",
                                           timeout=10_000)
                # The simulator transport marks what the dispatcher sent as delivered.
                page.wait_for_selector(".bubble.out .st-delivered", timeout=10_000)
            finally:
                browser.close()
    finally:
        stop.set()
        worker.join(timeout=10)
    with db.session() as session:
        report = session.scalar(select(ProgressReport)
                                .where(ProgressReport.graduate_id == graduate_id))
        assert report.status == "completed"
        assert (report.employment_status, report.employer, report.uses_training_skill,
                report.skill_rating, report.needs_help) == (
            "employed", "konveksi Bu Siti, Pekalongan", True, 4, None)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_status_buttons_show_and_a_tap_answers(app, db, settings, roster):
    """After two replies Kabar cannot place, the status comes as buttons; tapping one is the
    answer, as on WhatsApp."""
    sync_api = pytest.importorskip("playwright.sync_api")
    graduate_id = roster["graduate_ids"][1]
    with serve(app) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(base + "/simulator/")
            page.click(f".grad[data-id='{graduate_id}']")
            page.click(f".startround[data-cohort-id='{roster['cohort_id']}']")
            page.wait_for_selector(".bubble.out >> text=Bagaimana status kerja", timeout=10_000)
            for reply in ("hmm gmn ya", "bingung kak"):
                page.fill("#body", reply)
                page.press("#body", "Enter")
                page.wait_for_selector(f".bubble.in >> text={reply}", timeout=10_000)
            page.wait_for_selector("button.quick >> text=Belum bekerja", timeout=10_000)
            assert page.locator("button.quick").count() == 4
            page.click("button.quick >> text=Belum bekerja")
            page.wait_for_selector(".bubble.out >> text=info lowongan", timeout=10_000)
        finally:
            browser.close()
    with db.session() as session:
        report = session.scalar(select(ProgressReport)
                                .where(ProgressReport.graduate_id == graduate_id))
        assert report.employment_status == "seeking"
        assert report.readings["employment_status"] == "button"
