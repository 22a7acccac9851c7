"""The roster page: search in scope, upload with a per-line report, add, edit, deactivate."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from bot.models import AuditLog, Graduate
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import csrf_from, signed_in_client


@pytest.fixture
def roster_data(db):
    """LPKS A'nur (Menjahit 3: three graduates) and LPKS Baja (Las 1: Eko)."""
    with db.session() as s:
        menjahit = make_cohort(s, name="Menjahit 3", institution="LPKS A'nur")
        las = make_cohort(s, name="Las 1", institution="LPKS Baja", skill="las")
        siti, budi, dewi = make_graduates(s, menjahit, count=3)
        siti.name, budi.name, dewi.name = "Siti Aminah", "Budi Santoso", "Dewi Lestari"
        (eko,) = make_graduates(s, las, count=1, first_phone=6281300000001)
        eko.name = "Eko Prasetyo"
        s.flush()
        return {"menjahit": menjahit.id, "las": las.id, "siti": siti.id, "eko": eko.id,
                "eko_phone": eko.phone}


def names_on(response) -> list[str]:
    assert response.status_code == 200, response.status_code
    html = response.get_data(as_text=True)
    return re.findall(r'<tr class="[^"]*" data-id="\d+">\s*<td[^>]*><a href="[^"]+">([^<]+)</a>',
                      html)


def token(client) -> str:
    return csrf_from(client.get("/staff/roster").get_data(as_text=True))


def audits(db, action: str) -> list[AuditLog]:
    with db.session() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)
                              .order_by(AuditLog.id)))


def preview(client, name: str, content: bytes):
    return client.post("/staff/roster/upload", content_type="multipart/form-data",
                       data={"csrf_token": token(client), "roster": (io.BytesIO(content), name)})


def upload(client, name: str, content: bytes):
    """Upload, then confirm the preview (or return the preview when it cannot be confirmed);
    the page the confirmation leads to, the import's summary."""
    response = preview(client, name, content)
    html = response.get_data(as_text=True)
    action = re.search(r'action="(/staff/roster/import/[^"]+)"', html)
    if response.status_code != 200 or action is None:
        return response
    return client.post(action.group(1), data={"csrf_token": csrf_from(html)},
                       follow_redirects=True)


# --- listing ------------------------------------------------------------------------------

def test_the_roster_lists_graduates_by_name(app, db, roster_data):
    admin = signed_in_client(app, db)
    assert names_on(admin.get("/staff/roster")) == [
        "Budi Santoso", "Dewi Lestari", "Eko Prasetyo", "Siti Aminah"]


def test_search_by_name_or_by_number_as_people_type_it(app, db, roster_data):
    admin = signed_in_client(app, db)
    assert names_on(admin.get("/staff/roster?q=siti")) == ["Siti Aminah"]
    assert names_on(admin.get("/staff/roster?q=0813-0000")) == ["Eko Prasetyo"]
    assert names_on(admin.get(f"/staff/roster?cohort_id={roster_data['las']}")) == [
        "Eko Prasetyo"]


def test_pages_of_fifty_without_duplicates_or_gaps(app, db, roster_data):
    with db.session() as s:
        cohort = make_cohort(s, name="Bordir 1", institution="LPKS A'nur", join_code="BORDIR1")
        make_graduates(s, cohort, count=120, first_phone=6281400000001)
        expected = list(s.scalars(select(Graduate.id).order_by(Graduate.name, Graduate.id)))
    admin = signed_in_client(app, db)
    seen, url, sizes = [], "/staff/roster", []
    while url:
        html = admin.get(url).get_data(as_text=True)
        ids = [int(i) for i in re.findall(r'<tr class="[^"]*" data-id="(\d+)"', html)]
        sizes.append(len(ids))
        seen += ids
        found = re.search(r'href="([^"]+)" rel="next"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert sizes == [50, 50, 24]
    assert seen == expected


def test_a_viewer_reads_only_their_institution(app, db, roster_data):
    viewer = signed_in_client(app, db, "wati", "viewer", institution="LPKS A'nur")
    html = viewer.get("/staff/roster").get_data(as_text=True)
    assert names_on(viewer.get("/staff/roster")) == ["Budi Santoso", "Dewi Lestari",
                                                     "Siti Aminah"]
    assert "Eko" not in html and "Las 1" not in html and "LPKS Baja" not in html
    assert names_on(viewer.get("/staff/roster?q=0813")) == []
    assert viewer.get(f"/staff/roster?cohort_id={roster_data['las']}").status_code == 404
    assert viewer.get(f"/staff/roster?after={roster_data['eko']}").status_code == 404
    # Read only: no upload form, no add or edit links.
    assert "/staff/roster/upload" not in html and "/staff/roster/new" not in html
    assert "/edit" not in html


def test_a_viewer_cannot_change_anything(app, db, roster_data):
    viewer = signed_in_client(app, db, "wati", "viewer", institution="LPKS A'nur")
    csrf = token(viewer)
    siti, eko = roster_data["siti"], roster_data["eko"]
    new = {"csrf_token": csrf, "name": "Ani", "phone": "0812-9999-0001",
           "cohort_id": roster_data["menjahit"], "language": "id"}
    assert viewer.post("/staff/roster/new", data=new).status_code == 403
    assert viewer.get("/staff/roster/new").status_code == 403
    assert viewer.post(f"/staff/roster/{siti}/edit", data=new).status_code == 403
    assert viewer.post(f"/staff/roster/{siti}/active",
                       data={"csrf_token": csrf, "active": "0"}).status_code == 403
    assert viewer.post(f"/staff/roster/{eko}/active",
                       data={"csrf_token": csrf, "active": "0"}).status_code == 403
    response = viewer.post("/staff/roster/upload", content_type="multipart/form-data", data={
        "csrf_token": csrf, "roster": (io.BytesIO(b"lpks;paket;nama;no_wa\n"), "r.csv")})
    assert response.status_code == 403
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Graduate)) == 4
        assert all(s.scalars(select(Graduate.active)))


# --- upload -------------------------------------------------------------------------------

ROSTER_CSV = """lpks;paket;nama;no_wa;keterampilan
LPKS A'nur;Menjahit 3;Ani Rahayu;0812-9999-0001;menjahit
LPKS A'nur;Menjahit 3;;0812-9999-0002;menjahit
LPKS Baja;Las 2;Joko;12345;las
LPKS Baja;Las 2;Rudi Hartono;+62 812-9999-0004;las
LPKS Baja;Las 1;Eko P.;{eko};las
"""


def test_an_upload_imports_the_good_rows_and_reports_the_bad_ones_by_line(app, db,
                                                                          roster_data):
    staff = signed_in_client(app, db, "bayu", "staff")
    content = ROSTER_CSV.format(eko=roster_data["eko_phone"]).encode("utf-8")
    response = upload(staff, "daftar peserta.csv", content)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert re.search(r'data-count="created">2<', html)
    assert re.search(r'data-count="updated">1<', html)
    assert re.search(r'data-count="rejected">2<', html)
    rejected = re.findall(r'<tr><td class="num">(\d+)</td><td>([^<]+)</td></tr>', html)
    assert [line for line, _ in rejected] == ["3", "4"]
    assert "nama" in rejected[0][1] and "12345" in rejected[1][1]
    with db.session() as s:
        names = set(s.scalars(select(Graduate.name)))
        assert {"Ani Rahayu", "Rudi Hartono", "Eko P."} <= names and "Joko" not in names
        assert s.scalar(select(Graduate.phone).where(Graduate.name == "Rudi Hartono")) \
            == "+6281299990004"
    (entry,) = audits(db, "import_roster")
    assert entry.actor == "bayu" and entry.detail["created"] == 2
    assert entry.detail["rejected"] == 2


def test_an_xlsx_roster_is_imported_too(app, db, roster_data):
    book = Workbook()
    sheet = book.active
    sheet.append(["LPKS", "Paket", "Nama", "No WA"])
    sheet.append(["LPKS A'nur", "Menjahit 3", "Ani Rahayu", "081299990001"])
    data = io.BytesIO()
    book.save(data)
    admin = signed_in_client(app, db)
    response = upload(admin, "roster.xlsx", data.getvalue())
    assert re.search(r'data-count="created">1<', response.get_data(as_text=True))


def test_a_file_that_cannot_be_used_says_why(app, db, roster_data):
    admin = signed_in_client(app, db)
    response = upload(admin, "roster.csv", b"nama;telepon\nAni;0812\n")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "missing column" in html and "lpks" in html
    response = upload(admin, "lama.xls", b"\xd0\xcf\x11\xe0")
    assert response.status_code == 422 and ".xlsx" in response.get_data(as_text=True)
    assert audits(db, "import_roster") == []


# --- add, edit, deactivate ------------------------------------------------------------------

def test_adding_a_graduate_normalises_the_number_and_is_audited(app, db, roster_data):
    admin = signed_in_client(app, db, "rina", "admin")
    response = admin.post("/staff/roster/new", data={
        "csrf_token": token(admin), "name": "  Ani   Rahayu ", "phone": "0812 9999 0001",
        "cohort_id": roster_data["menjahit"], "skill": "", "language": "en"})
    assert response.status_code == 302
    with db.session() as s:
        ani = s.scalars(select(Graduate).where(Graduate.phone == "+6281299990001")).one()
        assert (ani.name, ani.cohort_id, ani.skill, ani.language) == (
            "Ani Rahayu", roster_data["menjahit"], "menjahit", "en")
    (entry,) = audits(db, "graduate.add")
    assert entry.actor == "rina" and entry.detail["phone"] == "+6281299990001"


def test_a_bad_or_taken_number_is_refused_with_a_reason(app, db, roster_data):
    admin = signed_in_client(app, db)
    form = {"csrf_token": token(admin), "name": "Ani", "phone": "12",
            "cohort_id": roster_data["menjahit"], "language": "id"}
    response = admin.post("/staff/roster/new", data=form)
    assert response.status_code == 422 and "0812-3456-7890" in response.get_data(as_text=True)
    response = admin.post("/staff/roster/new", data={**form, "phone": roster_data["eko_phone"]})
    assert response.status_code == 422 and "Eko Prasetyo" in response.get_data(as_text=True)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Graduate)) == 4
    assert audits(db, "graduate.add") == []


def test_editing_a_graduate_records_what_changed(app, db, roster_data):
    admin = signed_in_client(app, db, "rina", "admin")
    siti = roster_data["siti"]
    page = admin.get(f"/staff/roster/{siti}/edit").get_data(as_text=True)
    assert 'value="Siti Aminah"' in page
    response = admin.post(f"/staff/roster/{siti}/edit", data={
        "csrf_token": csrf_from(page), "name": "Siti Aminah", "phone": "+62 812-9999-0009",
        "cohort_id": roster_data["las"], "skill": "las", "language": "id"})
    assert response.status_code == 302
    with db.session() as s:
        graduate = s.get(Graduate, siti)
        assert (graduate.phone, graduate.cohort_id, graduate.skill) == (
            "+6281299990009", roster_data["las"], "las")
    (entry,) = audits(db, "graduate.edit")
    assert entry.actor == "rina"
    assert entry.detail["changes"]["cohort"] == ["Menjahit 3", "Las 1"]
    assert entry.detail["changes"]["phone"][1] == "+6281299990009"
    assert "name" not in entry.detail["changes"]


def test_deactivating_and_reactivating_are_soft_and_audited(app, db, roster_data):
    admin = signed_in_client(app, db, "rina", "admin")
    siti = roster_data["siti"]
    csrf = token(admin)
    assert admin.post(f"/staff/roster/{siti}/active",
                      data={"csrf_token": csrf, "active": "0"}).status_code == 302
    with db.session() as s:
        assert s.get(Graduate, siti).active is False
    assert "nonaktif" in admin.get("/staff/roster?state=inactive").get_data(as_text=True)
    assert names_on(admin.get("/staff/roster?state=inactive")) == ["Siti Aminah"]
    admin.post(f"/staff/roster/{siti}/active", data={"csrf_token": csrf, "active": "1"})
    with db.session() as s:
        assert s.get(Graduate, siti).active is True
    assert [e.actor for e in audits(db, "graduate.deactivate")] == ["rina"]
    assert [e.actor for e in audits(db, "graduate.reactivate")] == ["rina"]


def test_names_are_shown_as_text(app, db, roster_data):
    with db.session() as s:
        s.get(Graduate, roster_data["siti"]).name = "<script>alert(1)</script>"
    html = signed_in_client(app, db).get("/staff/roster").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html


def test_unknown_graduates_are_404(app, db, roster_data):
    admin = signed_in_client(app, db)
    assert admin.get("/staff/roster/99999/edit").status_code == 404
    assert admin.get("/staff/roster?cohort_id=99999").status_code == 404
