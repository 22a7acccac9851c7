"""The announcements page: a group post to chosen cohorts after a preview of the recipient count
and the text, confirmed with a POST; past posts with their delivery counts; staff only."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import func, select

from bot.models import AuditLog, Broadcast, Graduate, Message
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import csrf_from, signed_in_client

TEXT = "Besok ada *bursa kerja* di BLK jam 9. <Bawa CV>"


@pytest.fixture
def cohorts(db):
    with db.session() as session:
        m1 = make_cohort(session, "Menjahit 1", "LPKS A'nur")
        b1 = make_cohort(session, "Bordir 1", "LPKS Nisfisano", skill="bordir")
        grads = make_graduates(session, m1, 3, first_phone=6281200000101)
        make_graduates(session, b1, 2, first_phone=6281200000301)
        grads[2].opted_out = True
        return {"m1": m1.id, "b1": b1.id}


def post(client, **data):
    page = client.get("/staff/announcements").get_data(as_text=True)
    return client.post("/staff/announcements", data={**data, "csrf_token": csrf_from(page)})


def confirm_fields(html: str) -> dict[str, list[str]]:
    form = re.search(r'<form method="post"[^>]*class="confirm">(.*?)</form>', html, re.S)
    assert form, "no confirmation form"
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1)):
        fields.setdefault(name, []).append(unescape(value))
    return fields


def test_preview_counts_the_recipients_and_shows_the_text_then_sends(app, db, cohorts):
    client = signed_in_client(app, db, role="staff")
    response = post(client, cohort=[str(cohorts["m1"]), str(cohorts["b1"])], text=TEXT)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Akan dikirim ke 4 lulusan" in html
    assert "Menjahit 1: <strong>2</strong>" in html and "Bordir 1: <strong>2</strong>" in html
    assert "<strong>bursa kerja</strong>" in html and "&lt;Bawa CV&gt;" in html
    with db.session() as session:  # a preview sends nothing
        assert session.scalar(select(func.count()).select_from(Message)) == 0

    sent = client.post("/staff/announcements", data=confirm_fields(html))
    assert sent.status_code == 302
    with db.session() as session:
        bc = session.scalar(select(Broadcast))
        assert bc.kind == "announcement" and bc.recipient_count == 4
        bodies = session.scalars(select(Message.body).where(Message.broadcast_id == bc.id)).all()
        assert len(bodies) == 4 and all(TEXT in b for b in bodies)
        entry = session.scalar(select(AuditLog).where(AuditLog.action ==
                                                      "broadcast.announcement"))
        assert entry.actor == "rina" and entry.detail["text"] == TEXT
    listing = client.get("/staff/announcements").get_data(as_text=True)
    assert f'data-broadcast="{bc.id}"' in listing and 'data-count="queued">4<' in listing
    assert "&lt;Bawa CV&gt;" in listing
    progress = client.get(f"/staff/announcements/progress?ids={bc.id}").get_json()
    assert progress["broadcasts"][str(bc.id)]["counts"]["queued"] == 4


def test_a_stale_preview_is_not_sent(app, db, cohorts):
    client = signed_in_client(app, db)
    html = post(client, cohort=[str(cohorts["m1"])], text=TEXT).get_data(as_text=True)
    with db.session() as session:
        session.add(Graduate(cohort_id=cohorts["m1"], name="Baru", phone="+6281299990000"))
    response = client.post("/staff/announcements", data=confirm_fields(html))
    assert response.status_code == 409
    assert "Akan dikirim ke 3 lulusan" in response.get_data(as_text=True)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0


@pytest.mark.parametrize(("data", "error"), [
    ({"text": TEXT}, "Pilih paling sedikit satu paket."),
    ({"cohort": "M1", "text": "   "}, "Isi pengumuman masih kosong."),
    ({"cohort": "M1", "text": "x" * 1001}, "paling banyak 1000"),
])
def test_what_is_missing_is_named(app, db, cohorts, data, error):
    client = signed_in_client(app, db)
    if data.get("cohort") == "M1":
        data = {**data, "cohort": str(cohorts["m1"])}
    response = post(client, step="send", **data)
    assert response.status_code == 400 and error in response.get_data(as_text=True)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Broadcast)) == 0


def test_viewers_may_not_post_or_read_announcements(app, db, cohorts):
    viewer = signed_in_client(app, db, name="vivi", role="viewer", institution="LPKS A'nur")
    token = csrf_from(viewer.get("/staff/dashboard").get_data(as_text=True))
    assert viewer.get("/staff/announcements").status_code == 403
    assert viewer.post("/staff/announcements", data={
        "cohort": str(cohorts["m1"]), "text": TEXT, "step": "send", "csrf_token": token,
    }).status_code == 403
    assert "Pengumuman" not in viewer.get("/staff/dashboard").get_data(as_text=True)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Broadcast)) == 0
