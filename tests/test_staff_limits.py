"""Numbers and files out of range get a clear answer, never a database error."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from bot import MAX_ID, MAX_REQUEST_BYTES
from bot.models import Graduate
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import csrf_from, signed_in_client

HUGE = MAX_ID + 1  # one past the largest id the database can hold


@pytest.fixture
def cohort_id(db) -> int:
    with db.session() as s:
        cohort = make_cohort(s)
        make_graduates(s, cohort, 2)
        return cohort.id


@pytest.mark.parametrize("path", [
    f"/staff/graduates/{HUGE}",
    f"/staff/cohorts/{HUGE}",
    f"/staff/jobs/{HUGE}",
    f"/staff/roster/{HUGE}/edit",
    f"/staff/graduates/{10**30}",
    f"/staff/dashboard?cohort={HUGE}",
    f"/staff/dashboard?institution={HUGE}",
    f"/staff/log?cohort_id={HUGE}",
])
def test_an_id_too_large_for_the_database_is_not_found(app, db, cohort_id, path):
    assert signed_in_client(app, db).get(path).status_code == 404


def test_the_largest_id_is_still_looked_up(app, db, cohort_id):
    admin = signed_in_client(app, db)
    assert admin.get(f"/staff/graduates/{MAX_ID}").status_code == 404  # no such row
    assert admin.get(f"/staff/cohorts/{cohort_id}").status_code == 200


def test_a_roster_file_over_the_limit_is_refused_with_the_limit_named(app, db, cohort_id):
    admin = signed_in_client(app, db)
    token = csrf_from(admin.get("/staff/roster").get_data(as_text=True))
    big = b"nama,nomor,paket\n" + b"Siti,0812 0000 0099,Menjahit 1\n" * (
        MAX_REQUEST_BYTES // 30 + 10)
    response = admin.post("/staff/roster/upload", content_type="multipart/form-data",
                          data={"csrf_token": token, "roster": (io.BytesIO(big), "besar.csv")},
                          follow_redirects=True)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f"lebih besar dari {MAX_REQUEST_BYTES // (1024 * 1024)} MB" in page
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Graduate)) == 2  # nothing imported
