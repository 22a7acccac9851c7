"""The job openings pages: create, edit, close; preview exactly who receives what; send with a
confirmation; delivery progress; the shortlist and its exports; roles and scope."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from html import unescape

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from bot.broadcasts import JobDraft, broadcast_job, create_job, job_message
from bot.delivery import apply_status
from bot.models import (
    MSG_PENDING,
    AuditLog,
    Broadcast,
    CheckInRound,
    Cohort,
    Graduate,
    Interest,
    JobOpening,
    Message,
    ProgressReport,
)
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import csrf_from, signed_in_client

ANUR, NISFI = "LPKS A'nur", "LPKS Nisfisano"
JOB = {"title": "Operator jahit", "employer": "PT Sepatu KITB", "location": "Batang",
       "skill": "menjahit", "deadline": ""}


@pytest.fixture
def world(db):
    """Menjahit 1 (3 graduates, one opted out) and Menjahit 2 (2) at A'nur; Bordir 1 (2) at
    Nisfisano; latest statuses: m1[0] seeking (after employed), m2[0] employed."""
    with db.session() as session:
        m1 = make_cohort(session, "Menjahit 1", ANUR, skill="menjahit")
        m2 = make_cohort(session, "Menjahit 2", ANUR, skill="menjahit")
        b1 = make_cohort(session, "Bordir 1", NISFI, skill="bordir")
        g = {"m1": make_graduates(session, m1, 3, first_phone=6281200000101),
             "m2": make_graduates(session, m2, 2, first_phone=6281200000201),
             "b1": make_graduates(session, b1, 2, first_phone=6281200000301)}
        g["m1"][2].opted_out = True
        early = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
        late = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)
        report(session, g["m1"][0], early, "employed", 5)
        report(session, g["m1"][0], late, "seeking", 3)
        report(session, g["m2"][0], late, "employed", 4, employer="Konveksi Maju")
        return {"cohorts": {"m1": m1.id, "m2": m2.id, "b1": b1.id},
                "graduates": {k: [x.id for x in v] for k, v in g.items()}}


def report(session, graduate, when, status, rating, employer=None):
    round_ = session.scalar(select(CheckInRound).where(
        CheckInRound.cohort_id == graduate.cohort_id, CheckInRound.scheduled_for == when))
    if round_ is None:
        round_ = CheckInRound(cohort_id=graduate.cohort_id, scheduled_for=when)
        session.add(round_)
        session.flush()
    session.add(ProgressReport(round_id=round_.id, graduate_id=graduate.id, status="completed",
                               employment_status=status, skill_rating=rating, employer=employer,
                               raw_answers={}))
    session.flush()


def new_job(client, **fields):
    page = client.get("/staff/jobs/new").get_data(as_text=True)
    return client.post("/staff/jobs/new", data={**JOB, **fields, "csrf_token": csrf_from(page)})


def job_id_of(db, title=JOB["title"]) -> int:
    with db.session() as session:
        return session.scalar(select(JobOpening.id).where(JobOpening.title == title))


def preview(client, job_id, cohorts, **params):
    query = [("preview", "1")] + [("cohort", str(c)) for c in cohorts]
    query += [(k, v) for k, values in params.items()
              for v in (values if isinstance(values, list) else [values])]
    return client.get(f"/staff/jobs/{job_id}/send", query_string=query)


def recipients_in(html: str) -> list[int]:
    return sorted(int(i) for i in re.findall(r'data-recipient="(\d+)"', html))


def confirm_form(html: str) -> dict[str, list[str]]:
    """The hidden fields of the confirmation form on a preview page."""
    form = re.search(r'<form method="post"[^>]*class="confirm">(.*?)</form>', html, re.S)
    assert form, "no confirmation form on the page"
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1)):
        fields.setdefault(name, []).append(unescape(value))
    return fields


def audits(db, action):
    with db.session() as session:
        return [a.detail for a in session.scalars(
            select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))]


# --- create, edit, close --------------------------------------------------------------------

def test_staff_creates_a_job_and_goes_on_to_choose_its_recipients(app, db, world):
    client = signed_in_client(app, db, role="staff")
    response = new_job(client, deadline=(date.today() + timedelta(days=30)).isoformat())
    assert response.status_code == 302
    job_id = job_id_of(db)
    assert response.headers["Location"].endswith(f"/staff/jobs/{job_id}/send")
    with db.session() as session:
        job = session.get(JobOpening, job_id)
        assert (job.employer, job.location, job.skill, job.closed) == \
            ("PT Sepatu KITB", "Batang", "menjahit", False)
        assert job.created_by == "rina" and re.fullmatch(r"[A-Z2-9]{5}", job.code)
    assert audits(db, "job.create")[0]["code"] == job.code
    listing = client.get("/staff/jobs").get_data(as_text=True)
    assert "Operator jahit" in listing and job.code in listing


def test_the_form_names_each_missing_or_wrong_field_and_saves_nothing(app, db, world):
    client = signed_in_client(app, db)
    response = new_job(client, title="", location=" ", deadline="2020-01-01")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="err-title">Wajib diisi.' in html and 'id="err-location">Wajib diisi.' in html
    assert 'id="err-deadline">Tanggal ini sudah lewat.' in html
    assert 'value="PT Sepatu KITB"' in html  # what was typed is kept
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(JobOpening)) == 0


def test_edit_changes_the_job_and_audits_what_changed(app, db, world):
    client = signed_in_client(app, db)
    new_job(client)
    job_id = job_id_of(db)
    page = client.get(f"/staff/jobs/{job_id}/edit").get_data(as_text=True)
    assert 'value="Operator jahit"' in page
    response = client.post(f"/staff/jobs/{job_id}/edit", data={
        **JOB, "title": "Operator jahit senior", "deadline": "2099-12-31",
        "csrf_token": csrf_from(page)})
    assert response.status_code == 302
    with db.session() as session:
        job = session.get(JobOpening, job_id)
        assert job.title == "Operator jahit senior" and job.deadline == date(2099, 12, 31)
    assert audits(db, "job.edit")[0]["changes"] == {
        "title": ["Operator jahit", "Operator jahit senior"], "deadline": [None, "2099-12-31"]}


def test_a_closed_job_moves_to_the_closed_tab_and_cannot_be_sent(app, db, world):
    client = signed_in_client(app, db)
    new_job(client)
    job_id = job_id_of(db)
    page = client.get(f"/staff/jobs/{job_id}").get_data(as_text=True)
    assert client.post(f"/staff/jobs/{job_id}/close",
                       data={"csrf_token": csrf_from(page)}).status_code == 302
    with db.session() as session:
        assert session.get(JobOpening, job_id).closed is True
    assert audits(db, "job.close")[0]["job_id"] == job_id
    assert "Operator jahit" not in client.get("/staff/jobs").get_data(as_text=True)
    assert "Operator jahit" in client.get("/staff/jobs?state=closed").get_data(as_text=True)
    refused = preview(client, job_id, [world["cohorts"]["m1"]])
    assert refused.status_code == 400 and "ditutup" in refused.get_data(as_text=True)
    page = client.get(f"/staff/jobs/{job_id}").get_data(as_text=True)
    client.post(f"/staff/jobs/{job_id}/reopen", data={"csrf_token": csrf_from(page)})
    assert preview(client, job_id, [world["cohorts"]["m1"]]).status_code == 200


def test_posts_without_a_csrf_token_are_refused(app, db, world):
    client = signed_in_client(app, db)
    assert client.post("/staff/jobs/new", data=JOB).status_code == 400
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(JobOpening)) == 0


# --- preview and send -----------------------------------------------------------------------

def test_the_preview_lists_exactly_the_recipients_and_the_message_they_read(app, db, world):
    client = signed_in_client(app, db)
    new_job(client, skill="")
    job_id = job_id_of(db)
    c, g = world["cohorts"], world["graduates"]
    html = preview(client, job_id, [c["m1"], c["m2"]]).get_data(as_text=True)
    # Active graduates who have not opted out, of the chosen cohorts only.
    assert recipients_in(html) == sorted(g["m1"][:2] + g["m2"])
    assert "+6281200000101" in html and "Menjahit 2" in html and "Bordir 1" in html  # a choice
    assert "Mencari kerja" in html and "Sudah bekerja" in html and "Belum ada kabar" in html
    with db.session() as session:
        text = job_message("id", session.get(JobOpening, job_id))
    code = re.search(r"MINAT (\w{5})", text).group(1)
    assert f"Balas <strong>MINAT {code}</strong> jika berminat." in html
    assert "<strong>Lowongan: Operator jahit</strong>" in html
    # Filters: the latest status (seeking, not the earlier employed), then the skill.
    html = preview(client, job_id, [c["m1"], c["m2"]], status="seeking").get_data(as_text=True)
    assert recipients_in(html) == [g["m1"][0]]
    html = preview(client, job_id, [c["m1"], c["b1"]], skill="bordir").get_data(as_text=True)
    assert recipients_in(html) == g["b1"]
    empty = preview(client, job_id, [c["m1"]], skill="las")
    assert empty.status_code == 200 and recipients_in(empty.get_data(as_text=True)) == []
    assert "class=\"confirm\"" not in empty.get_data(as_text=True)


def test_no_cohort_chosen_is_named_not_previewed(app, db, world):
    client = signed_in_client(app, db)
    new_job(client)
    response = preview(client, job_id_of(db), [])
    assert response.status_code == 400
    assert "Pilih paling sedikit satu paket." in response.get_data(as_text=True)


def test_confirming_sends_one_message_per_previewed_recipient_once(app, db, world):
    client = signed_in_client(app, db, role="staff")
    new_job(client)
    job_id = job_id_of(db)
    c, g = world["cohorts"], world["graduates"]
    html = preview(client, job_id, [c["m1"], c["m2"]]).get_data(as_text=True)
    fields = confirm_form(html)
    response = client.post(f"/staff/jobs/{job_id}/send", data=fields)
    assert response.status_code == 302
    with db.session() as session:
        bc = session.scalar(select(Broadcast))
        assert response.headers["Location"].endswith(f"/staff/jobs/{job_id}#send-{bc.id}")
        messages = session.scalars(select(Message).where(Message.broadcast_id == bc.id)).all()
        assert sorted(m.graduate_id for m in messages) == sorted(g["m1"][:2] + g["m2"])
        assert {m.kind for m in messages} == {"job_opening"}
        assert {m.status for m in messages} == {MSG_PENDING}
        job = session.get(JobOpening, job_id)
        assert {m.body for m in messages} == {job_message("id", job)}
        assert bc.target["cohort_ids"] == sorted([c["m1"], c["m2"]])
    entry = audits(db, "broadcast.job")[0]
    assert entry["recipients"] == 4 and entry["job_id"] == job_id
    # The same confirmation again (a double click): nobody gets it twice.
    again = client.post(f"/staff/jobs/{job_id}/send", data=fields)
    assert again.status_code == 409
    assert recipients_in(again.get_data(as_text=True)) == []
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 4
    assert len(audits(db, "broadcast.job")) == 1


def test_a_stale_preview_is_not_sent(app, db, world):
    client = signed_in_client(app, db)
    new_job(client)
    job_id = job_id_of(db)
    c = world["cohorts"]
    fields = confirm_form(preview(client, job_id, [c["m2"]]).get_data(as_text=True))
    with db.session() as session:
        newcomer = Graduate(cohort_id=c["m2"], name="Dewi Baru", phone="+6281299999999",
                            skill="menjahit")
        session.add(newcomer)
    response = client.post(f"/staff/jobs/{job_id}/send", data=fields)
    html = response.get_data(as_text=True)
    assert response.status_code == 409 and "Penerima berubah" in html
    assert "Dewi Baru" in html  # the new preview shows who would receive it now
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_a_second_send_reaches_only_those_who_have_not_had_it(app, db, world):
    client = signed_in_client(app, db)
    new_job(client)
    job_id = job_id_of(db)
    c, g = world["cohorts"], world["graduates"]
    client.post(f"/staff/jobs/{job_id}/send", data=confirm_form(
        preview(client, job_id, [c["m2"]]).get_data(as_text=True)))
    html = preview(client, job_id, [c["m1"], c["m2"]]).get_data(as_text=True)
    assert recipients_in(html) == sorted(g["m1"][:2])
    assert "2 lulusan lain di paket ini sudah menerima" in html


def test_user_text_is_escaped_everywhere(app, db, world):
    client = signed_in_client(app, db)
    new_job(client, title="<script>alert(1)</script>", employer="A & B <b>")
    job_id = job_id_of(db, "<script>alert(1)</script>")
    pages = [client.get("/staff/jobs"), client.get(f"/staff/jobs/{job_id}"),
             preview(client, job_id, [world["cohorts"]["m1"]])]
    for response in pages:
        html = response.get_data(as_text=True)
        assert "<script>alert(1)" not in html and "<b>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- progress and shortlist -----------------------------------------------------------------

def send_job(db, settings, cohort_ids, title="Operator jahit") -> tuple[int, int]:
    with db.session() as session:
        job = create_job(session, settings, JobDraft(title=title, employer="PT Sepatu KITB",
                                                     location="Batang"), actor="rina")
        bc = broadcast_job(session, settings, job, cohort_ids, actor="rina")
        return job.id, bc.id


def test_progress_counts_follow_the_status_callbacks(app, db, settings, world):
    c = world["cohorts"]
    job_id, bc_id = send_job(db, settings, [c["m1"], c["b1"]])
    with db.session() as session:
        messages = session.scalars(select(Message).order_by(Message.id)).all()
        for i, message in enumerate(messages):
            message.twilio_sid = f"SM{i:032d}"
            message.status = "queued"
    with db.session() as session:
        apply_status(session, "SM" + "0" * 32, "delivered")
        apply_status(session, f"SM{1:032d}", "read")
        apply_status(session, f"SM{2:032d}", "failed", "63016")
    client = signed_in_client(app, db)
    data = client.get(f"/staff/jobs/{job_id}/progress").get_json()
    progress = data["broadcasts"][str(bc_id)]
    assert progress["counts"] == {"queued": 1, "sent": 0, "delivered": 1, "read": 1,
                                  "failed": 1, "suppressed": 0}
    assert progress["total"] == 4
    assert progress["failures"][0]["code"] == "63016"
    html = client.get(f"/staff/jobs/{job_id}").get_data(as_text=True)
    assert f'data-broadcast="{bc_id}"' in html and 'data-count="delivered">1<' in html
    # A viewer of A'nur counts only the A'nur messages.
    viewer = signed_in_client(app, db, name="vivi", role="viewer", institution=ANUR)
    scoped = viewer.get(f"/staff/jobs/{job_id}/progress").get_json()["broadcasts"][str(bc_id)]
    assert scoped["total"] == 2


def interested(db, job_id, graduate_ids, when=datetime(2026, 5, 2, 3, 0, tzinfo=UTC)):
    with db.session() as session:
        for i, graduate_id in enumerate(graduate_ids):
            session.add(Interest(job_id=job_id, graduate_id=graduate_id,
                                 created_at=when + timedelta(minutes=i)))


def test_the_shortlist_shows_each_candidate_and_exports_for_the_employer(
        app, db, settings, world):
    c, g = world["cohorts"], world["graduates"]
    job_id, _ = send_job(db, settings, [c["m1"], c["m2"], c["b1"]])
    interested(db, job_id, [g["m1"][0], g["m2"][0], g["b1"][1]])
    client = signed_in_client(app, db)
    html = client.get(f"/staff/jobs/{job_id}").get_data(as_text=True)
    shortlist = html[html.index('id="shortlist"'):]
    for name in ("Lulusan Menjahit 1 1", "Lulusan Menjahit 2 1", "Lulusan Bordir 1 2"):
        assert name in shortlist
    assert "Mencari kerja" in shortlist and "3/5" in shortlist and "+6281200000101" in shortlist
    assert "02/05/2026 10:00" in shortlist  # the interest time in Jakarta time

    csv_response = client.get(f"/staff/jobs/{job_id}/shortlist.csv")
    assert csv_response.status_code == 200
    assert "attachment" in csv_response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(csv_response.get_data().decode("utf-8-sig"))))
    assert rows[0][:4] == ["Nama", "No. WhatsApp", "LPKS", "Paket"]
    assert [r[0] for r in rows[1:]] == ["Lulusan Menjahit 1 1", "Lulusan Menjahit 2 1",
                                        "Lulusan Bordir 1 2"]
    assert rows[1][1:8] == ["+6281200000101", ANUR, "Menjahit 1", "02/05/2026 10:00",
                            "Mencari kerja", "", "3"]
    assert rows[2][5:8] == ["Sudah bekerja", "Konveksi Maju", "4"]

    xlsx_response = client.get(f"/staff/jobs/{job_id}/shortlist.xlsx?lang=en")
    sheet = load_workbook(io.BytesIO(xlsx_response.get_data())).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0][:2] == ["Name", "WhatsApp number"]
    assert values[1][:2] == ["Lulusan Menjahit 1 1", "+6281200000101"]
    assert values[1][5] == "Looking for work" and len(values) == 4
    exports = audits(db, "export")
    assert [(e["what"], e["format"], e["rows"], e["job_id"]) for e in exports] == [
        ("shortlist", "csv", 3, job_id), ("shortlist", "xlsx", 3, job_id)]
    assert client.get(f"/staff/jobs/{job_id}/shortlist.pdf").status_code == 404


# --- roles and scope ------------------------------------------------------------------------

def test_a_viewer_reads_only_their_institutions_jobs_and_graduates(app, db, settings, world):
    c, g = world["cohorts"], world["graduates"]
    shared, _ = send_job(db, settings, [c["m1"], c["b1"]], title="Penjahit garmen")
    other, _ = send_job(db, settings, [c["b1"]], title="Pembordir payet")
    interested(db, shared, [g["m1"][0], g["b1"][0]])
    viewer = signed_in_client(app, db, name="vivi", role="viewer", institution=ANUR)
    listing = viewer.get("/staff/jobs").get_data(as_text=True)
    assert "Penjahit garmen" in listing and "Pembordir payet" not in listing
    assert "Lowongan baru" not in listing  # no create button
    html = viewer.get(f"/staff/jobs/{shared}").get_data(as_text=True)
    assert "Lulusan Menjahit 1 1" in html and "Lulusan Bordir 1 1" not in html
    assert "Tutup lowongan" not in html
    rows = list(csv.reader(io.StringIO(
        viewer.get(f"/staff/jobs/{shared}/shortlist.csv").get_data().decode("utf-8-sig"))))
    assert [r[0] for r in rows[1:]] == ["Lulusan Menjahit 1 1"]
    # Another institution's job: 404 everywhere.
    for url in (f"/staff/jobs/{other}", f"/staff/jobs/{other}/progress",
                f"/staff/jobs/{other}/shortlist.csv"):
        assert viewer.get(url).status_code == 404, url
    # Read-only: every write is 403, nothing changes.
    token = csrf_from(html)
    assert viewer.post("/staff/jobs/new", data={**JOB, "csrf_token": token}).status_code == 403
    assert viewer.get("/staff/jobs/new").status_code == 403
    for url in (f"/staff/jobs/{shared}/close", f"/staff/jobs/{shared}/edit",
                f"/staff/jobs/{shared}/send"):
        assert viewer.post(url, data={"csrf_token": token, "cohort": str(c["m1"])}
                           ).status_code == 403, url
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(JobOpening)) == 2
        assert not session.get(JobOpening, shared).closed
        assert session.scalar(select(func.count()).select_from(Broadcast)) == 2


def test_staff_cannot_choose_a_cohort_outside_the_list(app, db, world):
    client = signed_in_client(app, db)
    new_job(client)
    job_id = job_id_of(db)
    with db.session() as session:
        session.get(Cohort, world["cohorts"]["m2"]).active = False
    response = preview(client, job_id, [world["cohorts"]["m2"], 9999])
    assert response.status_code == 400  # neither an inactive nor an unknown cohort is chosen


def test_signed_status_callbacks_from_twilio_move_the_progress_to_delivered(
        db, twilio_settings, twilio_fake, world):
    """The same path as the browser test, without a browser: the console's send goes out
    through the Twilio transport, the fake posts signed callbacks to a live server."""
    from bot import create_app
    from bot.dispatcher import Dispatcher
    from tests.live import serve

    settings = twilio_settings.with_overrides(
        twilio={"templates": {"job_opening": "HX" + "c" * 32}})
    app = create_app(settings, db)
    client = signed_in_client(app, db)
    new_job(client)
    job_id = job_id_of(db)
    client.post(f"/staff/jobs/{job_id}/send", data=confirm_form(
        preview(client, job_id, [world["cohorts"]["m2"]]).get_data(as_text=True)))
    assert Dispatcher(settings, db).run_once() == 2
    assert [m["status_callback"] for m in twilio_fake.accepted] == [
        "http://kabar.test/twilio/status"] * 2
    with serve(app) as base_url:
        answers = twilio_fake.post_status_callbacks("delivered", base_url=base_url)
        assert [code for _, code in answers] == [200, 200]
        # A callback signed with another token is refused and changes nothing.
        twilio_fake.auth_token, token = "not-the-token", twilio_fake.auth_token
        assert [code for _, code in twilio_fake.post_status_callbacks(
            "read", base_url=base_url)] == [403, 403]
        twilio_fake.auth_token = token
    progress = client.get(f"/staff/jobs/{job_id}/progress").get_json()
    (counts,) = [p["counts"] for p in progress["broadcasts"].values()]
    assert counts["delivered"] == 2 and counts["read"] == 0 and counts["queued"] == 0
