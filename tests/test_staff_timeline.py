"""A cohort's chat and a graduate's page: order, keyset paging, escaping, scope, corrections."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.models import (
    INBOUND,
    MSG_DELIVERED,
    MSG_FAILED,
    MSG_PENDING,
    MSG_READ,
    MSG_RECEIVED,
    MSG_SENT,
    OUTBOUND,
    REPORT_COMPLETED,
    AuditLog,
    CheckInRound,
    Message,
    ProgressReport,
)
from bot.staff.timeline import PAGE_SIZE
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import csrf_from, signed_in_client

SCRIPT = "<script>alert(1)</script>"
START = datetime(2024, 6, 3, 1, 0, tzinfo=UTC)  # Monday 3 June 2024, 08:00 in Jakarta


def message(session, graduate, body, at, direction=INBOUND, **extra) -> Message:
    outbound = direction == OUTBOUND
    row = Message(direction=direction, graduate_id=graduate.id, cohort_id=graduate.cohort_id,
                  phone=graduate.phone, kind=extra.pop("kind", "reply" if outbound else "inbound"),
                  body=body, status=extra.pop("status", MSG_READ if outbound else MSG_RECEIVED),
                  created_at=at, updated_at=at, **extra)
    session.add(row)
    session.flush()
    return row


@pytest.fixture
def chat(db):
    """Menjahit 1 (A'nur) with Siti and Budi talking to Kabar; Bordir 1 (Nisfisano) with Ani."""
    with db.session() as s:
        m1 = make_cohort(s, "Menjahit 1", "LPKS A'nur", join_code="MJ1")
        siti, budi = make_graduates(s, m1, 2)
        siti.name, budi.name = "Siti Aminah", "Budi Santoso"
        b = make_cohort(s, "Bordir 1", "LPKS Nisfisano", skill="bordir", join_code="BR1")
        (ani,) = make_graduates(s, b, 1, first_phone=6281200000901)
        ani.name = "Ani Bordir"
        ids = [
            message(s, siti, "Halo Kak *Siti*! Apa kabar?", START, OUTBOUND, kind="checkin",
                    status=MSG_READ).id,
            message(s, siti, "sdh kerja di pabrik sepatu", START + timedelta(minutes=5)).id,
            message(s, budi, SCRIPT, START + timedelta(minutes=6)).id,
            message(s, budi, "Terima kasih", START + timedelta(minutes=7), OUTBOUND,
                    status=MSG_DELIVERED).id,
            message(s, siti, "Di mana Anda bekerja?", START + timedelta(minutes=8), OUTBOUND,
                    status=MSG_FAILED, error_code="63016", error_message="outside the window").id,
            message(s, siti, "", START + timedelta(days=1, minutes=1), media_url=(
                "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"),
                media_type="image/jpeg").id,
            message(s, budi, "Info lowongan", START + timedelta(days=1, minutes=2), OUTBOUND,
                    kind="job_opening", status=MSG_SENT).id,
            message(s, budi, "Pengingat", START + timedelta(days=1, minutes=3), OUTBOUND,
                    kind="reminder", status=MSG_PENDING).id,
        ]
        message(s, ani, "pesan dari Bordir", START)
        out = {"m1": m1.id, "b": b.id, "siti": siti.id, "budi": budi.id, "ani": ani.id,
               "ids": ids}
    return out


def bubbles(page: str) -> list[str]:
    """The bubbles of a page in order, as plain text."""
    found = re.findall(r'<div class="bubble (?:in|out)" id="m(\d+)"', page)
    return [int(x) for x in found]


def bubble_html(page: str, message_id: int) -> str:
    match = re.search(rf'<div class="bubble (?:in|out)" id="m{message_id}".*?</div>\s*</div>',
                      page, re.S)
    assert match, f"no bubble {message_id}"
    return match.group(0)


def test_the_cohort_chat_reads_like_a_whatsapp_group(app, db, chat):
    page = signed_in_client(app, db).get(f"/staff/cohorts/{chat['m1']}").get_data(as_text=True)
    assert bubbles(page) == chat["ids"]  # oldest at the top, newest at the bottom
    assert "pesan dari Bordir" not in page
    first, inbound = bubble_html(page, chat["ids"][0]), bubble_html(page, chat["ids"][1])
    assert "Kabar → Siti Aminah · tanya kabar" in first
    assert "Halo Kak <strong>Siti</strong>! Apa kabar?" in first  # Kabar's own *bold*
    assert '<time title="03/06/2024 08:00">08:00</time>' in first  # Asia/Jakarta
    assert 'class="ticks read"' in first and "✓✓" in first
    assert f'href="/staff/graduates/{chat["siti"]}">Siti Aminah</a>' in inbound
    assert 'class="ticks' not in inbound
    assert 'class="ticks delivered"' in bubble_html(page, chat["ids"][3])
    failed = bubble_html(page, chat["ids"][4])
    assert 'class="ticks failed" title="Gagal (kode 63016) – outside the window"' in failed
    assert 'class="ticks sent"' in bubble_html(page, chat["ids"][6])
    assert 'class="ticks pending"' in bubble_html(page, chat["ids"][7])
    media = bubble_html(page, chat["ids"][5])
    assert 'href="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"' in media
    assert ">image/jpeg</a>" in media
    days = re.findall(r'<div class="day" role="separator">([^<]+)</div>', page)
    assert days == ["Senin, 03/06/2024", "Selasa, 04/06/2024"]


def test_a_graduates_script_is_shown_as_text(app, db, chat):
    client = signed_in_client(app, db)
    for path in (f"/staff/cohorts/{chat['m1']}", f"/staff/graduates/{chat['budi']}"):
        page = client.get(path).get_data(as_text=True)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert SCRIPT not in page


def test_keyset_paging_walks_back_and_forth_without_gaps(app, db, chat):
    with db.session() as s:
        from bot.models import Graduate

        siti = s.get(Graduate, chat["siti"])
        later = START + timedelta(days=3)
        # 120 more, some sharing a timestamp, so the id breaks the tie
        extra = [message(s, siti, f"balasan {i}", later + timedelta(minutes=i // 3)).id
                 for i in range(120)]
    every = chat["ids"] + extra
    client = signed_in_client(app, db)
    url = f"/staff/cohorts/{chat['m1']}"
    seen: list[int] = []
    page = client.get(url).get_data(as_text=True)
    while True:
        shown = bubbles(page)
        assert 0 < len(shown) <= PAGE_SIZE
        seen = shown + seen
        older = re.search(r'href="\?before=(\d+)"', page)
        if not older:
            break
        assert int(older.group(1)) == shown[0]
        page = client.get(f"{url}?before={older.group(1)}").get_data(as_text=True)
    assert seen == every
    assert len(bubbles(client.get(url).get_data(as_text=True))) == PAGE_SIZE
    # ...and forward again from the oldest page
    page = client.get(f"{url}?after={every[PAGE_SIZE - 1]}").get_data(as_text=True)
    assert bubbles(page) == every[PAGE_SIZE:2 * PAGE_SIZE]
    assert "?after=" in page and 'data-poll=' not in page
    # a cursor from another cohort is not a page of this one
    other = client.get(f"{url}?before=9999")
    assert other.status_code == 404


def test_polling_returns_only_new_messages(app, db, chat):
    client = signed_in_client(app, db)
    page = client.get(f"/staff/cohorts/{chat['m1']}").get_data(as_text=True)
    last = int(re.search(r'data-last="(\d+)"', page).group(1))
    assert client.get(f"/staff/cohorts/{chat['m1']}/poll?after={last}").get_json() == {
        "html": "", "last_id": last}
    with db.session() as s:
        from bot.models import Graduate

        new = message(s, s.get(Graduate, chat["budi"]), SCRIPT,
                      START + timedelta(days=1, minutes=30)).id
    data = client.get(f"/staff/cohorts/{chat['m1']}/poll?after={last}").get_json()
    assert data["last_id"] == new and f'id="m{new}"' in data["html"]
    assert "&lt;script&gt;" in data["html"] and SCRIPT not in data["html"]
    assert '<div class="day"' not in data["html"]  # same day as the message before


def test_the_cohort_list(app, db, chat):
    page = signed_in_client(app, db).get("/staff/cohorts").get_data(as_text=True)
    assert f'href="/staff/cohorts/{chat["m1"]}">Menjahit 1</a>' in page
    assert f'href="/staff/cohorts/{chat["b"]}">Bordir 1</a>' in page
    assert "04/06/2024 08:03" in page  # Menjahit 1's last message, in Jakarta time


def test_a_viewer_of_one_institution_gets_404_for_another(app, db, chat):
    viewer = signed_in_client(app, db, "vina", "viewer", institution="LPKS A'nur")
    assert viewer.get(f"/staff/cohorts/{chat['m1']}").status_code == 200
    assert viewer.get(f"/staff/cohorts/{chat['b']}").status_code == 404
    assert viewer.get(f"/staff/cohorts/{chat['b']}/poll?after=0").status_code == 404
    assert viewer.get(f"/staff/graduates/{chat['ani']}").status_code == 404
    assert viewer.get(f"/staff/graduates/{chat['siti']}").status_code == 200
    listing = viewer.get("/staff/cohorts").get_data(as_text=True)
    assert "Menjahit 1" in listing and "Bordir" not in listing
    assert signed_in_client(app, db).get("/staff/graduates/999").status_code == 404


# --- a graduate's page --------------------------------------------------------------------

@pytest.fixture
def reported(db, chat):
    """Siti answered a round: raw text kept beside what Kabar understood."""
    with db.session() as s:
        round_ = CheckInRound(cohort_id=chat["m1"], scheduled_for=START, trigger="schedule")
        s.add(round_)
        s.flush()
        report = ProgressReport(
            round_id=round_.id, graduate_id=chat["siti"], status=REPORT_COMPLETED,
            employment_status="seeking", employer=None, uses_training_skill=None,
            skill_rating=2, needs_help=None, responded_at=START + timedelta(minutes=5),
            raw_answers={"status": ["sdh kerja di pabrik sepatu"], "rating": ["dua"],
                         "help": [SCRIPT]})
        s.add(report)
        s.flush()
        return {**chat, "report": report.id}


def test_the_graduate_page_shows_profile_answers_and_history(app, db, reported):
    page = signed_in_client(app, db).get(f"/staff/graduates/{reported['siti']}")
    html = page.get_data(as_text=True)
    assert "<h1>Siti Aminah</h1>" in html
    assert 'href="tel:+6281200000001"' in html and "0812-0000-0001" in html
    assert "Menjahit 1" in html and "LPKS A&#39;nur" in html
    status_row = re.search(r"Status kerja</th>(.*?)</tr>", html, re.S).group(1)
    assert '<q class="raw">sdh kerja di pabrik sepatu</q>' in status_row
    assert "<td>Mencari kerja</td>" in status_row  # what Kabar understood, beside it
    assert '<q class="raw">&lt;script&gt;alert(1)&lt;/script&gt;</q>' in html
    history = bubbles(html)
    assert history == [i for i in reported["ids"] if i != reported["ids"][2]
                       and i != reported["ids"][3] and i != reported["ids"][6]
                       and i != reported["ids"][7]]
    assert 'action="/staff/graduates/' in html  # an admin may correct


def correct(client, graduate_id, report_id, **fields):
    page = client.get(f"/staff/graduates/{graduate_id}").get_data(as_text=True)
    data = {"csrf_token": csrf_from(page), "employment_status": "seeking", "employer": "",
            "uses_training_skill": "", "skill_rating": "2", "needs_help": "", **fields}
    return client.post(f"/staff/graduates/{graduate_id}/reports/{report_id}", data=data)


def test_staff_correct_an_interpretation_and_it_is_audited(app, db, reported):
    client = signed_in_client(app, db, "sari", "staff")
    response = correct(client, reported["siti"], reported["report"],
                       employment_status="employed", employer="Pabrik sepatu KITB",
                       uses_training_skill="yes")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/staff/graduates/{reported['siti']}#r"
                                                 f"{reported['report']}")
    with db.session() as s:
        report = s.get(ProgressReport, reported["report"])
        assert (report.employment_status, report.employer, report.uses_training_skill,
                report.skill_rating) == ("employed", "Pabrik sepatu KITB", True, 2)
        entry = s.scalar(select(AuditLog).where(AuditLog.action == "report.corrected"))
    assert entry.actor == "sari"
    assert entry.detail["report_id"] == reported["report"]
    assert entry.detail["graduate_id"] == reported["siti"]
    assert entry.detail["changes"] == {
        "employment_status": {"old": "seeking", "new": "employed"},
        "employer": {"old": None, "new": "Pabrik sepatu KITB"},
        "uses_training_skill": {"old": None, "new": True}}
    page = client.get(f"/staff/graduates/{reported['siti']}").get_data(as_text=True)
    assert "Koreksi tersimpan" in page and "<td>Bekerja</td>" in page
    # the same values again change nothing and write nothing
    correct(client, reported["siti"], reported["report"], employment_status="employed",
            employer="Pabrik sepatu KITB", uses_training_skill="yes")
    with db.session() as s:
        assert len(s.scalars(select(AuditLog).where(
            AuditLog.action == "report.corrected")).all()) == 1


def test_a_viewer_sees_no_form_and_cannot_correct(app, db, reported):
    viewer = signed_in_client(app, db, "vina", "viewer", institution="LPKS A'nur")
    page = viewer.get(f"/staff/graduates/{reported['siti']}").get_data(as_text=True)
    assert "Koreksi pemahaman" not in page and "/reports/" not in page
    response = viewer.post(f"/staff/graduates/{reported['siti']}/reports/{reported['report']}",
                           data={"csrf_token": csrf_from(page), "employment_status": "employed",
                                 "skill_rating": "5"})
    assert response.status_code == 403
    with db.session() as s:
        assert s.get(ProgressReport, reported["report"]).employment_status == "seeking"
        assert s.scalar(select(AuditLog).where(AuditLog.action == "report.corrected")) is None


def test_bad_corrections_are_refused(app, db, reported):
    client = signed_in_client(app, db)
    assert correct(client, reported["siti"], reported["report"],
                   employment_status="astronaut").status_code == 400
    assert correct(client, reported["siti"], reported["report"],
                   skill_rating="9").status_code == 400
    assert correct(client, reported["budi"], reported["report"]).status_code == 404
    response = client.post(f"/staff/graduates/{reported['siti']}/reports/{reported['report']}",
                           data={"employment_status": "employed"})
    assert response.status_code == 400  # no CSRF token
    with db.session() as s:
        assert s.get(ProgressReport, reported["report"]).employment_status == "seeking"


def test_my_pages_have_the_same_texts_in_both_languages():
    def keys(node, prefix=""):
        out = set()
        for key, value in node.items():
            out |= keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
        return out

    text = Path(__file__).parents[1] / "bot" / "staff" / "text"
    for page in ("dashboard", "timeline", "graduates"):
        indonesian = keys(tomllib.loads((text / "id" / f"{page}.toml").read_text("utf-8")))
        english = keys(tomllib.loads((text / "en" / f"{page}.toml").read_text("utf-8")))
        assert indonesian == english, page


def test_only_kabars_own_text_gets_whatsapp_formatting_and_it_stays_escaped():
    from bot.staff.timeline import wa_format

    assert wa_format("Balas *ya* atau _tidak_") == "Balas <strong>ya</strong> atau <em>tidak</em>"
    assert wa_format("*<img src=x onerror=alert(1)>*") == (
        "<strong>&lt;img src=x onerror=alert(1)&gt;</strong>")
    assert wa_format("2*3*4 dan snake_case_name") == "2*3*4 dan snake_case_name"


def test_chart_labels_are_escaped():
    from bot.staff.charts import Bar, Segment, bar_chart, stacked_bars

    svg = stacked_bars([("<script>", [Segment("a&b", 2, "#000")]),
                        ("x", [Segment("a&b", 1, "#000")])], title="<t>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&amp;b" in svg
    assert "<title id=" in svg and "&lt;t&gt;" in svg
    svg = bar_chart([Bar("<i>", 50, "50%", "</title><script>")], title="t", max_value=100)
    assert "<script>" not in svg and "&lt;/title&gt;&lt;script&gt;" in svg
