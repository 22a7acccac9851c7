"""The audit log page and staff user management: roles, changes, and an audit entry for each."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.models import AuditLog, StaffUser, audit
from bot.staff.i18n import TEXT_DIR
from tests.factories import make_cohort
from tests.staff_helpers import PASSWORD, csrf_from, signed_in_client


@pytest.fixture
def institutions(db):
    with db.session() as s:
        anur = make_cohort(s, name="Menjahit 3", institution="LPKS A'nur").institution_id
        baja = make_cohort(s, name="Las 1", institution="LPKS Baja", skill="las").institution_id
    return {"anur": anur, "baja": baja}


def entries(db, action: str) -> list[AuditLog]:
    with db.session() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)
                              .order_by(AuditLog.id)))


def user(db, name: str) -> StaffUser:
    with db.session() as s:
        return s.scalars(select(StaffUser).where(StaffUser.name == name)).one()


def can_sign_in(app, name: str, password: str) -> bool:
    client = app.test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    response = client.post("/staff/login", data={"name": name, "password": password,
                                                 "csrf_token": csrf_from(page)})
    return response.status_code == 302


# --- the audit log page ------------------------------------------------------------------------

def test_the_audit_log_is_for_admins_and_staff(app, db, institutions):
    assert signed_in_client(app, db, "rina", "admin").get("/staff/audit").status_code == 200
    assert signed_in_client(app, db, "bayu", "staff").get("/staff/audit").status_code == 200
    viewer = signed_in_client(app, db, "wati", "viewer", institution="LPKS A'nur")
    assert viewer.get("/staff/audit").status_code == 403
    assert "/staff/audit" not in viewer.get("/staff/dashboard").get_data(as_text=True)


def test_entries_show_who_did_what_when_readably(app, db, institutions):
    with db.session() as s:
        entry = audit(s, "bayu", "export", what="messages", format="csv", rows=12,
                      filters={"text": "modal", "cohort_id": [3, 5]})
        entry.created_at = datetime(2024, 5, 1, 17, 30, tzinfo=UTC)  # 00:30 on 2 May in Jakarta
        audit(s, "<script>alert(1)</script>", "login_failed", ip="127.0.0.1")
    admin = signed_in_client(app, db)
    html = admin.get("/staff/audit").get_data(as_text=True)
    assert "02/05/2024 00:30" in html
    assert "teks: modal; no. paket: 3, 5" in html  # the details' names in Indonesian
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert "ekspor" in html and "gagal masuk" in html  # actions in words


def test_filter_by_actor_and_action(app, db, institutions):
    with db.session() as s:
        audit(s, "bayu", "export", what="messages")
        audit(s, "bayu", "graduate.add", name="Ani")
        audit(s, "sari", "export", what="progress")
    admin = signed_in_client(app, db, "rina", "admin")

    def shown(query):
        html = admin.get("/staff/audit?" + query).get_data(as_text=True)
        return re.findall(r'<tr data-id="\d+" data-action="([^"]+)">\s*<td[^>]*>.*?</td>\s*'
                          r'<td[^>]*><a [^>]*>([^<]+)</a>', html, re.S)

    assert shown("actor=bayu") == [("graduate.add", "bayu"), ("export", "bayu")]
    assert shown("actor=Bayu&action=export") == [("export", "bayu")]
    assert sorted(shown("action=export")) == [("export", "bayu"), ("export", "sari")]


def test_audit_pages_have_no_duplicates_or_gaps(app, db, institutions):
    with db.session() as s:
        for i in range(130):
            audit(s, "bayu", "export", n=i)
    admin = signed_in_client(app, db)
    with db.session() as s:
        expected = list(s.scalars(select(AuditLog.id).order_by(AuditLog.id.desc())))
    seen, url = [], "/staff/audit"
    while url:
        html = admin.get(url).get_data(as_text=True)
        seen += [int(i) for i in re.findall(r'<tr data-id="(\d+)"', html)]
        found = re.search(r'href="([^"]+)" rel="next"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert len(expected) > 130
    assert seen == expected


# --- users --------------------------------------------------------------------------------------

def test_the_users_page_is_for_admins_only(app, db, institutions):
    staff = signed_in_client(app, db, "bayu", "staff")
    viewer = signed_in_client(app, db, "wati", "viewer", institution="LPKS A'nur")
    target = user(db, "wati").id
    for client in (staff, viewer):
        csrf = csrf_from(client.get("/staff/dashboard").get_data(as_text=True))
        assert client.get("/staff/users").status_code == 403
        assert client.get(f"/staff/users/{target}").status_code == 403
        assert client.post("/staff/users", data={
            "csrf_token": csrf, "name": "evil", "role": "admin",
            "password": "rahasia-123"}).status_code == 403
        assert client.post(f"/staff/users/{target}", data={
            "csrf_token": csrf, "role": "admin"}).status_code == 403
        assert client.post(f"/staff/users/{target}/password", data={
            "csrf_token": csrf, "password": "baru-sekali-123"}).status_code == 403
        assert client.post(f"/staff/users/{target}/active", data={
            "csrf_token": csrf, "active": "0"}).status_code == 403
    assert user(db, "wati").role == "viewer" and user(db, "wati").active
    with db.session() as s:
        assert s.scalar(select(StaffUser).where(StaffUser.name == "evil")) is None


def test_an_admin_adds_a_viewer_for_one_institution(app, db, institutions):
    admin = signed_in_client(app, db, "rina", "admin")
    csrf = csrf_from(admin.get("/staff/users").get_data(as_text=True))
    response = admin.post("/staff/users", data={
        "csrf_token": csrf, "name": "wati", "role": "viewer",
        "institution_id": institutions["anur"], "phone": "0812-5555-0001",
        "password": "rahasia-wati"})
    assert response.status_code == 302
    wati = user(db, "wati")
    assert (wati.role, wati.institution_id, wati.phone) == (
        "viewer", institutions["anur"], "+6281255550001")
    assert can_sign_in(app, "wati", "rahasia-wati")
    (entry,) = [e for e in entries(db, "staff_add") if e.detail["name"] == "wati"]
    assert entry.actor == "rina" and "rahasia" not in str(entry.detail)


@pytest.mark.parametrize(("form", "message"), [
    ({"name": "wati", "role": "viewer", "password": "rahasia-wati"}, "Pemantau hanya melihat"),
    ({"name": "rina", "role": "staff", "password": "rahasia-rina"}, "sudah dipakai"),
    ({"name": "joko", "role": "staff", "password": "pendek"}, "paling sedikit 8"),
    ({"name": "joko", "role": "boss", "password": "rahasia-joko"}, "Pilih peran"),
    ({"name": "joko", "role": "staff", "password": "rahasia-joko", "phone": "12"},
     "bukan nomor WhatsApp"),
])
def test_a_user_that_cannot_be_added_is_explained(app, db, institutions, form, message):
    admin = signed_in_client(app, db, "rina", "admin")
    csrf = csrf_from(admin.get("/staff/users").get_data(as_text=True))
    response = admin.post("/staff/users", data={"csrf_token": csrf, **form})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert [e.detail["name"] for e in entries(db, "staff_add")] == ["rina"]


def test_changing_role_and_institution_is_audited(app, db, institutions):
    admin = signed_in_client(app, db, "rina", "admin")
    signed_in_client(app, db, "bayu", "staff")
    bayu = user(db, "bayu").id
    page = admin.get(f"/staff/users/{bayu}").get_data(as_text=True)
    response = admin.post(f"/staff/users/{bayu}", data={
        "csrf_token": csrf_from(page), "role": "viewer",
        "institution_id": institutions["baja"], "phone": ""})
    assert response.status_code == 302
    changed = user(db, "bayu")
    assert (changed.role, changed.institution_id) == ("viewer", institutions["baja"])
    (entry,) = entries(db, "staff.edit")
    assert entry.actor == "rina"
    assert entry.detail["changes"] == {"role": ["staff", "viewer"],
                                       "institution": [None, "LPKS Baja"]}
    # A viewer needs an institution.
    response = admin.post(f"/staff/users/{bayu}", data={
        "csrf_token": csrf_from(page), "role": "viewer", "institution_id": ""})
    assert response.status_code == 422
    assert user(db, "bayu").institution_id == institutions["baja"]


def test_the_new_role_applies_at_the_next_request(app, db, institutions):
    admin = signed_in_client(app, db, "rina", "admin")
    staff = signed_in_client(app, db, "bayu", "staff")
    assert staff.get("/staff/audit").status_code == 200
    page = admin.get(f"/staff/users/{user(db, 'bayu').id}").get_data(as_text=True)
    admin.post(f"/staff/users/{user(db, 'bayu').id}", data={
        "csrf_token": csrf_from(page), "role": "viewer",
        "institution_id": institutions["anur"]})
    assert staff.get("/staff/audit").status_code == 403


def test_resetting_a_password(app, db, institutions):
    admin = signed_in_client(app, db, "rina", "admin")
    signed_in_client(app, db, "bayu", "staff")
    bayu = user(db, "bayu").id
    csrf = csrf_from(admin.get(f"/staff/users/{bayu}").get_data(as_text=True))
    short = admin.post(f"/staff/users/{bayu}/password",
                       data={"csrf_token": csrf, "password": "pendek"})
    assert short.status_code == 422
    response = admin.post(f"/staff/users/{bayu}/password",
                          data={"csrf_token": csrf, "password": "kata-sandi-baru"})
    assert response.status_code == 302
    assert can_sign_in(app, "bayu", "kata-sandi-baru")
    assert not can_sign_in(app, "bayu", PASSWORD)
    (entry,) = entries(db, "staff.password_reset")
    assert entry.actor == "rina" and entry.detail == {"user_id": bayu, "name": "bayu"}


def test_deactivating_a_user_signs_them_out_and_is_audited(app, db, institutions):
    admin = signed_in_client(app, db, "rina", "admin")
    staff = signed_in_client(app, db, "bayu", "staff")
    bayu = user(db, "bayu").id
    csrf = csrf_from(admin.get("/staff/users").get_data(as_text=True))
    assert admin.post(f"/staff/users/{bayu}/active",
                      data={"csrf_token": csrf, "active": "0"}).status_code == 302
    assert user(db, "bayu").active is False
    assert staff.get("/staff/dashboard").status_code == 302  # back to the login page
    assert not can_sign_in(app, "bayu", PASSWORD)
    admin.post(f"/staff/users/{bayu}/active", data={"csrf_token": csrf, "active": "1"})
    assert can_sign_in(app, "bayu", PASSWORD)
    assert [e.actor for e in entries(db, "staff.deactivate")] == ["rina"]
    assert [e.actor for e in entries(db, "staff.reactivate")] == ["rina"]


def test_an_admin_cannot_deactivate_or_demote_themselves(app, db, institutions):
    admin = signed_in_client(app, db, "rina", "admin")
    rina = user(db, "rina").id
    csrf = csrf_from(admin.get("/staff/users").get_data(as_text=True))
    response = admin.post(f"/staff/users/{rina}/active", data={"csrf_token": csrf,
                                                                "active": "0"})
    assert response.status_code in (302, 303)
    assert "tidak bisa menonaktifkan" in admin.get("/staff/users").get_data(as_text=True)
    response = admin.post(f"/staff/users/{rina}", data={"csrf_token": csrf, "role": "staff"})
    assert response.status_code == 422
    assert user(db, "rina").active and user(db, "rina").role == "admin"
    assert entries(db, "staff.deactivate") == [] and entries(db, "staff.edit") == []


def test_user_names_are_shown_as_text(app, db, institutions):
    with db.session() as s:
        s.add(StaffUser(name="<b>x</b>", role="staff", password_hash="-"))
    html = signed_in_client(app, db).get("/staff/users").get_data(as_text=True)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


# --- texts -------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", ["replylog", "roster", "auditlog", "users"])
def test_both_languages_have_the_same_texts(page):
    def keys(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from keys(value, f"{prefix}{key}.")
            else:
                yield prefix + key

    texts = {lang: set(keys(tomllib.loads((TEXT_DIR / lang / f"{page}.toml").read_text(
        encoding="utf-8")))) for lang in ("id", "en")}
    assert texts["id"] == texts["en"]
