"""Roster upload in the console: a preview of every change, then the confirmed import.

Nothing changes before the confirmation; the confirmation imports exactly what was shown, and
refuses (showing the new preview) when the roster changed in between.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.models import AuditLog, Cohort, Graduate, Institution, RosterUpload
from bot.roster_plan import COMMIT_EVERY
from tests.factories import make_cohort, make_graduates
from tests.live import wait_for
from tests.roster_helpers import big_roster, import_held
from tests.staff_helpers import csrf_from, signed_in_client

# Against the data below: Siti renamed, Dewi moved to Menjahit 4 (new cohort), Joko new in a
# new LPKS, one bad number, Budi left out (stays active).
ROSTER = """lpks;paket;nama;no_wa;keterampilan
LPKS A'nur;Menjahit 3;Siti Aminah Putri;+6281200000001;menjahit
LPKS A'nur;Menjahit 4;Dewi Lestari;+6281200000003;menjahit
LPKS Baru;Las 1;Joko Susilo;0813-2222-5555;las
LPKS Baru;Las 1;Rudi;12345;las
"""


@pytest.fixture
def roster_data(db):
    with db.session() as s:
        menjahit = make_cohort(s, name="Menjahit 3", institution="LPKS A'nur")
        siti, budi, dewi = make_graduates(s, menjahit, count=3)
        siti.name, budi.name, dewi.name = "Siti Aminah", "Budi Santoso", "Dewi Lestari"


def preview(client, content: str = ROSTER, name: str = "daftar.csv"):
    page = client.get("/staff/roster").get_data(as_text=True)
    return client.post("/staff/roster/upload", content_type="multipart/form-data",
                       data={"csrf_token": csrf_from(page),
                             "roster": (io.BytesIO(content.encode("utf-8")), name)})


def confirm(client, preview_response, follow: bool = True):
    """Confirm the previewed import; the summary page it leads to (or the refusal)."""
    html = preview_response.get_data(as_text=True)
    action = re.search(r'action="(/staff/roster/import/[^"]+)"', html).group(1)
    response = client.post(action, data={"csrf_token": csrf_from(html)})
    if follow and response.status_code == 303:
        assert response.headers["Location"] == action
        return client.get(action)
    return response


def counts(response) -> dict[str, int]:
    html = response.get_data(as_text=True)
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


def state(db) -> dict:
    with db.session() as s:
        return {"graduates": {g.phone: (g.name, g.cohort.name if g.cohort else None, g.active)
                              for g in s.scalars(select(Graduate))},
                "institutions": sorted(s.scalars(select(Institution.name))),
                "audit": [(a.action, a.detail) for a in s.scalars(
                    select(AuditLog).where(AuditLog.action.not_in(("login", "staff_add")))
                    .order_by(AuditLog.id))]}


def test_the_preview_shows_every_change_and_changes_nothing(app, db, roster_data):
    before = state(db)
    staff = signed_in_client(app, db, "bayu", "staff")
    response = preview(staff)
    assert response.status_code == 200
    assert counts(response) == {"new_institutions": 1, "new_cohorts": 2, "created": 1,
                                "renamed": 1, "moved": 1, "other": 0, "unchanged": 0,
                                "rejected": 1}
    html = response.get_data(as_text=True)
    assert re.search(r"<li>LPKS Baru</li>", html)
    assert "<li>LPKS A&#39;nur/Menjahit 4</li>" in html and "<li>LPKS Baru/Las 1</li>" in html
    renamed = re.search(r'<table class="plan-renamed">.*?</table>', html, re.S).group(0)
    assert "Siti Aminah</td><td>Siti Aminah Putri" in renamed
    moved = re.search(r'<table class="plan-moved">.*?</table>', html, re.S).group(0)
    assert "LPKS A&#39;nur/Menjahit 3</td><td>LPKS A&#39;nur/Menjahit 4" in moved
    assert "1 lulusan aktif dari paket-paket ini tidak ada di berkas" in html  # Budi stays
    assert "12345" in html
    assert state(db) == before  # nothing imported, nothing audited


def test_confirming_imports_what_was_shown_and_audits_renames_and_moves(app, db, roster_data):
    staff = signed_in_client(app, db, "bayu", "staff")
    response = confirm(staff, preview(staff))
    assert response.status_code == 200
    assert counts(response)["created"] == 1 and counts(response)["renamed"] == 1
    after = state(db)
    assert after["graduates"]["+6281200000001"] == ("Siti Aminah Putri", "Menjahit 3", True)
    assert after["graduates"]["+6281200000003"] == ("Dewi Lestari", "Menjahit 4", True)
    assert after["graduates"]["+6281322225555"] == ("Joko Susilo", "Las 1", True)
    assert after["graduates"]["+6281200000002"] == ("Budi Santoso", "Menjahit 3", True)
    assert after["institutions"] == ["LPKS A'nur", "LPKS Baru"]
    actions = {action: detail for action, detail in after["audit"]}
    assert actions["graduate.rename"]["changes"] == {"name": ["Siti Aminah",
                                                              "Siti Aminah Putri"]}
    assert actions["graduate.move"]["changes"] == {
        "cohort": ["LPKS A'nur/Menjahit 3", "LPKS A'nur/Menjahit 4"]}
    assert actions["import_roster"]["created"] == 1 and actions["import_roster"]["moved"] == 1
    audit_page = staff.get("/staff/audit").get_data(as_text=True)
    assert "Siti Aminah → Siti Aminah Putri" in audit_page


def test_a_roster_changed_since_the_preview_is_not_imported(app, db, roster_data):
    staff = signed_in_client(app, db, "bayu", "staff")
    shown = preview(staff)
    with db.session() as s:  # someone edits Siti meanwhile, and adds LPKS Baru by hand
        siti = s.scalar(select(Graduate).where(Graduate.phone == "+6281200000001"))
        siti.name = "Siti A."
        s.add(Institution(name="LPKS Baru"))
    response = confirm(staff, shown)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert 'data-state="changed"' in html
    assert counts(response)["new_institutions"] == 0
    assert "Siti A.</td><td>Siti Aminah Putri" in html
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Graduate)) == 3  # Joko not yet
    response = confirm(staff, response)  # the new preview, confirmed
    assert response.status_code == 200
    assert state(db)["graduates"]["+6281200000001"][0] == "Siti Aminah Putri"
    assert state(db)["institutions"] == ["LPKS A'nur", "LPKS Baru"]


def test_a_confirmation_imports_once(app, db, roster_data):
    staff = signed_in_client(app, db, "bayu", "staff")
    shown = preview(staff)
    assert confirm(staff, shown).status_code == 200
    again = confirm(staff, shown, follow=False)
    assert again.status_code == 302
    page = staff.get(again.headers["Location"]).get_data(as_text=True)
    assert "daftar.csv sudah diimpor" in page
    assert [a for a, _ in state(db)["audit"]].count("import_roster") == 1


def test_only_the_uploader_confirms_and_uploads_expire(app, db, roster_data):
    bayu = signed_in_client(app, db, "bayu", "staff")
    shown = preview(bayu)
    other = signed_in_client(app, db, "rina", "admin")
    html = shown.get_data(as_text=True)
    action = re.search(r'action="(/staff/roster/import/[^"]+)"', html).group(1)
    page = other.get("/staff/roster").get_data(as_text=True)
    response = other.post(action, data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    assert "tidak tersedia" in other.get("/staff/roster").get_data(as_text=True)
    with db.session() as s:
        for kept in s.scalars(select(RosterUpload)):
            kept.created_at -= timedelta(days=2)
    assert confirm(bayu, shown).status_code == 302
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Cohort)) == 1  # nothing imported
    viewer = signed_in_client(app, db, "vina", "viewer", institution="LPKS A'nur")
    assert viewer.post(action, data={"csrf_token": csrf_from(page)}).status_code in (400, 403)


def test_a_file_with_nothing_new_offers_no_import(app, db, roster_data):
    staff = signed_in_client(app, db, "bayu", "staff")
    same = ("lpks;paket;nama;no_wa;keterampilan\n"
            "LPKS A'nur;Menjahit 3;Siti Aminah;+6281200000001;menjahit\n")
    response = preview(staff, same)
    assert counts(response)["unchanged"] == 1
    html = response.get_data(as_text=True)
    assert 'data-state="nothing"' in html and "/staff/roster/import/" not in html


def progress(client, token: str) -> dict:
    response = client.get(f"/staff/roster/import/{token}/progress")
    assert response.status_code == 200
    return response.get_json()


def test_a_large_upload_is_written_in_the_background_and_its_page_follows(app, db,
                                                                          roster_data):
    rows = 20 * COMMIT_EVERY  # chunks enough that the test holds it before it ends
    staff = signed_in_client(app, db, "bayu", "staff")
    shown = preview(staff, big_roster(rows), name="besar.csv")
    assert counts(shown)["created"] == rows
    started = confirm(staff, shown, follow=False)
    assert started.status_code == 303
    page = started.headers["Location"]
    token = page.rsplit("/", 1)[1]
    with import_held(db, token) as held:  # mid-way: some chunks written, the next waits
        assert 0 < held.rows_done < rows and held.finished_at is None
        assert progress(staff, token) == {"state": "applying", "done": held.rows_done,
                                          "total": rows}
        html = staff.get(page).get_data(as_text=True)
        assert 'data-state="applying"' in html and "roster_progress.js" in html
        assert f'<progress max="{rows}" value="{held.rows_done}">' in html
        with db.read_session() as s:  # what the page says is what is committed
            assert s.scalar(select(func.count()).select_from(Graduate)) == 3 + held.rows_done
    wait_for(lambda: progress(staff, token)["state"] == "done", timeout=120,
             message="the import to finish")
    assert progress(staff, token) == {"state": "done", "done": rows, "total": rows}
    summary = staff.get(page)
    assert summary.status_code == 200
    assert counts(summary)["created"] == rows and counts(summary)["rejected"] == 0
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Graduate)) == 3 + rows
        entries = list(s.scalars(select(AuditLog).where(AuditLog.action == "import_roster")))
        assert [(e.actor, e.detail["created"]) for e in entries] == [("bayu", rows)]
    # Another user, or nobody signed in, sees nothing of it.
    other = signed_in_client(app, db, "rina", "admin")
    assert other.get(f"/staff/roster/import/{token}/progress").status_code == 404
    assert other.get(page).status_code == 302
