"""The dashboard: its numbers match prepared data, it filters, and a viewer sees only their LPKS."""

from __future__ import annotations

import html as htmllib
import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.models import (
    REPORT_COMPLETED,
    REPORT_OPEN,
    REPORT_UNANSWERED,
    CheckInRound,
    ProgressReport,
    utcnow,
)
from bot.staff.dashboard import LIST_LIMIT
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import signed_in_client

WIB = ZoneInfo("Asia/Jakarta")
SCRIPT = "<script>alert(1)</script>"


def month_start(months_ago: int, day: int) -> datetime:
    """09:00 in Jakarta on ``day`` of the month ``months_ago`` before this one (as UTC)."""
    today = utcnow().astimezone(WIB).date()
    year, month = today.year, today.month - months_ago
    while month < 1:
        year, month = year - 1, month + 12
    return datetime.combine(today.replace(year=year, month=month, day=day), time(9),
                            tzinfo=WIB).astimezone(UTC)


def a_round(session, cohort, at: datetime, trigger: str = "schedule") -> CheckInRound:
    round_ = CheckInRound(cohort_id=cohort.id, scheduled_for=at, trigger=trigger, created_at=at)
    session.add(round_)
    session.flush()
    return round_


def answer(session, round_, graduate, status=None, uses=None, rating=None, help_text=None,
           responded=True, open_=False) -> ProgressReport:
    at = round_.scheduled_for
    report = ProgressReport(round_id=round_.id, graduate_id=graduate.id, created_at=at,
                            raw_answers={}, status=REPORT_UNANSWERED)
    if open_:
        report.status = REPORT_OPEN
    if responded:
        report.status, report.responded_at = REPORT_COMPLETED, at + timedelta(hours=2)
        report.completed_at = at + timedelta(hours=2, minutes=5)
        report.employment_status, report.uses_training_skill = status, uses
        report.skill_rating, report.needs_help = rating, help_text
        report.raw_answers = {"status": [status or "?"], "rating": [str(rating)]}
    session.add(report)
    return report


@pytest.fixture
def world(db):
    """Two LPKS: A'nur (Menjahit 1 with 5 graduates, Menjahit 2 with 2), Nisfisano (Bordir 1, 3).

    Latest answers: g1 employed+skill, g2 studying (asks for help with a <script>), g3 employed
    without the skill (an older answer), g4 seeking (own CEK), g5 self-employed (opted out),
    h1 seeking (needs help), b1 employed+skill; h2, b2, b3 never answered.
    """
    with db.session() as s:
        m1 = make_cohort(s, "Menjahit 1", "LPKS A'nur", join_code="MJ1")
        m2 = make_cohort(s, "Menjahit 2", "LPKS A'nur", join_code="MJ2")
        b = make_cohort(s, "Bordir 1", "LPKS Nisfisano", skill="bordir", join_code="BR1")
        g = make_graduates(s, m1, 5, first_phone=6281200000001)
        h = make_graduates(s, m2, 2, first_phone=6281200000101)
        bb = make_graduates(s, b, 3, first_phone=6281200000201)
        g[4].opted_out, g[4].opted_out_at = True, month_start(1, 20)
        r1 = a_round(s, m1, month_start(2, 2))
        answer(s, r1, g[0], "employed", True, 3, "modal untuk beli kain")
        answer(s, r1, g[1], "seeking", None, 2)
        answer(s, r1, g[2], "employed", False, 4)
        answer(s, r1, g[3], responded=False)
        answer(s, r1, g[4], "self_employed", None, 5)
        r2 = a_round(s, m1, month_start(1, 2))
        answer(s, r2, g[0], "employed", True, 4, None)
        answer(s, r2, g[1], "studying", None, 3, SCRIPT)
        answer(s, r2, g[2], responded=False, open_=True)
        answer(s, r2, g[3], responded=False)
        r3 = a_round(s, m2, month_start(1, 2))
        answer(s, r3, h[0], "seeking", None, 2, "butuh mesin jahit")
        answer(s, r3, h[1], responded=False)
        r4 = a_round(s, b, month_start(1, 4))
        answer(s, r4, bb[0], "employed", True, 5)
        answer(s, r4, bb[1], responded=False)
        answer(s, r4, bb[2], responded=False)
        own = a_round(s, m1, month_start(1, 10), trigger="self")  # g4 sent CEK
        answer(s, own, g[3], "seeking", None, 3)
        ids = {"m1": m1.id, "m2": m2.id, "b": b.id, "a": m1.institution_id,
               "nis": b.institution_id, "g": [x.id for x in g], "h": [x.id for x in h],
               "bb": [x.id for x in bb]}
        names = {x.id: x.name for x in g + h + bb}
        phones = {x.id: x.phone for x in g + h + bb}
    return {**ids, "names": names, "phones": phones}


def figure(page: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}"><span class="value">([^<]*)</span>', page)
    assert match, f"no figure {name}"
    return match.group(1)


def section(page: str, ident: str) -> str:
    match = re.search(rf'<section class="card" id="{ident}">(.*?)</section>', page, re.S)
    assert match, f"no section {ident}"
    return match.group(1)


def row(page: str, attribute: str, value: int) -> list[str]:
    match = re.search(rf'<tr class="[^"]*" {attribute}="{value}">(.*?)</tr>', page, re.S)
    assert match, f"no row {attribute}={value}"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)
    return [htmllib.unescape(" ".join(re.sub(r"<[^>]+>", " ", c).split())) for c in cells]


def test_the_numbers_match_the_prepared_data(app, db, world):
    page = signed_in_client(app, db).get("/staff/dashboard").get_data(as_text=True)
    assert figure(page, "graduates") == "10"
    assert "9 aktif · 1 berhenti" in page
    assert figure(page, "response") == "44%"  # latest rounds: 2/4 + 1/2 + 1/3
    assert figure(page, "working") == "57%"  # employed 3 + self-employed 1 of 7 who answered
    assert figure(page, "uses_skill") == "67%"  # g1 and b1 of g1, g3, b1
    assert figure(page, "needs_help") == "2"  # g2 and h1; g1's older request is answered
    assert figure(page, "not_answered") == "5"  # g3, g4, h2, b2, b3
    # Response rate per round day (Jakarta time), oldest first; g4's own CEK is not a round.
    rates = [htmllib.unescape(m) for m in re.findall(r"<title>([^<]*menjawab \(\d+%\))</title>",
                                                     page)]
    assert [r.split(": ")[1] for r in rates] == [
        "4 dari 5 menjawab (80%)", "3 dari 6 menjawab (50%)", "1 dari 3 menjawab (33%)"]
    # Employment status from each graduate's latest answer; three never answered.
    for label, share in [("Bekerja", "30% (3 orang)"), ("Usaha sendiri", "10% (1 orang)"),
                         ("Mencari kerja", "20% (2 orang)"), ("Sekolah / kursus", "10% (1 orang)"),
                         ("Belum diketahui", "30% (3 orang)")]:
        assert f'{label} <tspan fill="#5f6f6a">{share}</tspan>' in page
    # Skill rating per round month, the own CEK included: 3,2,4,5 then 4,3,2,5,3.
    assert "rata-rata 3,5 dari 4 jawaban" in page  # a decimal comma in Indonesian
    assert "rata-rata 3,4 dari 5 jawaban" in page


def test_per_institution_and_cohort_rows(app, db, world):
    page = signed_in_client(app, db).get("/staff/dashboard").get_data(as_text=True)
    # cohort, graduates, opted out, latest round, answered, working, skill, help, silent
    m1 = row(page, "data-cohort", world["m1"])
    assert m1[0].startswith("Menjahit 1") and m1[1:3] == ["5", "1"]
    assert m1[4] == "2/4 (50%)" and m1[5:] == ["60%", "50%", "1", "2"]
    assert row(page, "data-cohort", world["b"])[4] == "1/3 (33%)"
    anur = row(page, "data-institution", world["a"])
    assert anur[0] == "LPKS A'nur" and anur[1:3] == ["7", "1"] and anur[4] == "3/6 (50%)"
    assert row(page, "data-institution", world["nis"])[1] == "3"


def test_who_needs_help_and_who_to_call(app, db, world):
    page = signed_in_client(app, db).get("/staff/dashboard").get_data(as_text=True)
    help_list = section(page, "help")
    names = world["names"]
    assert names[world["g"][1]] in help_list and names[world["h"][0]] in help_list
    assert names[world["g"][0]] not in help_list  # answered "no help" in the newer round
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in help_list and SCRIPT not in page
    assert f'href="/staff/graduates/{world["h"][0]}"' in help_list
    call_list = section(page, "silent")
    called = {gid for gid in names if f'href="tel:{world["phones"][gid]}"' in call_list}
    assert called == {world["g"][2], world["g"][3], world["h"][1], world["bb"][1],
                      world["bb"][2]}
    assert "0812-0000-0003" in call_list  # shown as Indonesians write it
    opted_out = section(page, "opted-out")
    assert names[world["g"][4]] in opted_out and '<span class="badge failed">1</span>' in opted_out


def test_filter_by_institution_and_by_cohort(app, db, world):
    client = signed_in_client(app, db)
    page = client.get(f"/staff/dashboard?institution={world['nis']}").get_data(as_text=True)
    assert figure(page, "graduates") == "3" and figure(page, "response") == "33%"
    assert "Menjahit 1" not in section(page, "silent")
    page = client.get(f"/staff/dashboard?cohort={world['m2']}").get_data(as_text=True)
    assert figure(page, "graduates") == "2" and figure(page, "needs_help") == "1"
    assert figure(page, "not_answered") == "1" and figure(page, "working") == "0%"
    assert f'<option value="{world["m2"]}" selected>' in page
    assert client.get("/staff/dashboard?cohort=999").status_code == 404
    assert client.get("/staff/dashboard?institution=999").status_code == 404


def test_a_viewer_sees_only_their_institution(app, db, world):
    viewer = signed_in_client(app, db, "vina", "viewer", institution="LPKS A'nur")
    page = viewer.get("/staff/dashboard").get_data(as_text=True)
    assert figure(page, "graduates") == "7"
    assert "Nisfisano" not in page and "Bordir" not in page
    for gid in world["bb"]:
        assert world["names"][gid] not in page and world["phones"][gid] not in page
    assert viewer.get(f"/staff/dashboard?institution={world['nis']}").status_code == 404
    assert viewer.get(f"/staff/dashboard?cohort={world['b']}").status_code == 404
    assert viewer.get(f"/staff/dashboard?cohort={world['m1']}").status_code == 200


def test_charts_are_server_drawn_svg_with_titles(app, db, world):
    page = signed_in_client(app, db).get("/staff/dashboard").get_data(as_text=True)
    charts = re.findall(r'<svg class="chart [^"]*"[^>]*role="img"[^>]*>\s*<title id="[^"]+">'
                        r"([^<]+)</title>", page)
    assert charts[:4] == ["Tingkat jawaban per putaran", "Status kerja (jawaban terakhir)",
                          "Yang bekerja memakai keterampilan pelatihan?",
                          "Rata-rata nilai keterampilan per bulan"]
    assert "Status kerja per paket" in charts  # several cohorts: one bar each
    assert "<script" not in page.split("<main>")[1]


def test_an_empty_console_and_english(app, db):
    client = signed_in_client(app, db)
    page = client.get("/staff/dashboard").get_data(as_text=True)
    assert figure(page, "graduates") == "0" and "Belum ada putaran tanya kabar." in page
    page = client.get("/staff/dashboard?lang=en").get_data(as_text=True)
    assert "Response rate per round" in page and "No check-in rounds yet." in page


def test_english_numbers(app, db, world):
    page = signed_in_client(app, db).get("/staff/dashboard?lang=en").get_data(as_text=True)
    assert "3 of 6 answered (50%)" in page and "9 active · 1 opted out" in page


def test_the_call_list_is_the_first_hundred_by_cohort_and_name(app, db):
    """Only the first cohorts' people are read for the call list; it must still be exactly
    the first 100 of everyone silent, sorted by cohort and name. The 100th falls among two
    cohorts of the same name, whose people sort together."""
    expected = []
    cohort_ids = []
    with db.session() as s:
        for index, name in enumerate(("Bordir 1", "Bordir 2", "Bordir 3", "Bordir 4",
                                      "Jahit 1", "Jahit 1", "Obras 1")):
            cohort = make_cohort(s, name, f"LPKS {index}", join_code=f"C{index}")
            cohort_ids.append(cohort.id)
            people = make_graduates(s, cohort, 30, first_phone=6281300000000 + 1000 * index)
            round_ = a_round(s, cohort, month_start(1, 2))
            for number, graduate in enumerate(people):
                graduate.name = f"Peserta {(number * 7 + index) % 30:02d}-{index}"
                silent = number % 5 != 0
                answer(s, round_, graduate, "seeking", None, 3, responded=not silent)
                if silent and number == 1:
                    graduate.opted_out = True  # silent, but nobody calls them
                elif silent:
                    expected.append((name, graduate.name, graduate.id, graduate.phone))
    expected.sort()
    assert len(expected) > 100
    page = signed_in_client(app, db).get("/staff/dashboard").get_data(as_text=True)
    listed = re.findall(r'href="tel:(\+\d+)"', section(page, "silent"))
    assert listed == [phone for *_, phone in expected[:LIST_LIMIT]]
    # The figures leave out the silent who opted out, for everyone and for one cohort.
    assert figure(page, "not_answered") == str(len(expected))
    one = signed_in_client(app, db, "sari").get(f"/staff/dashboard?cohort={cohort_ids[0]}")
    assert figure(one.get_data(as_text=True), "not_answered") == str(
        sum(1 for name, *_ in expected if name == "Bordir 1"))


@pytest.mark.parametrize("few_rounds", [100, 0], ids=["latest rounds by id", "many rounds"])
def test_nobody_counts_as_not_answered_who_cannot_be_called(app, db, monkeypatch, few_rounds):
    """Opted-out and inactive graduates with an unanswered prompt in the latest round are not
    on the call list's count, whether the latest rounds are few (looked up by id) or many (as
    in a province, found from those graduates)."""
    monkeypatch.setattr("bot.staff.dashboard.FEW_ROUNDS", few_rounds)
    with db.session() as s:
        cohort = make_cohort(s, "Las 2", "BLK Batang", skill="las", join_code="LS2")
        other = make_cohort(s, "Las 3", "BLK Batang", skill="las", join_code="LS3")
        g = make_graduates(s, cohort, 5, first_phone=6281200000301)
        (o,) = make_graduates(s, other, 1, first_phone=6281200000401)
        older = a_round(s, cohort, month_start(2, 2))
        answer(s, older, g[2], responded=False)  # an older round: not counted either way
        latest = a_round(s, cohort, month_start(1, 2))
        answer(s, latest, g[0], "employed", True, 4)
        answer(s, latest, g[1], responded=False)
        answer(s, latest, g[2], responded=False)
        answer(s, latest, g[3], responded=False)
        answer(s, latest, g[4], responded=False)
        answer(s, a_round(s, other, month_start(1, 3)), o, responded=False)
        g[2].opted_out, g[2].opted_out_at = True, month_start(0, 1)
        g[3].active = False
        o.opted_out, o.opted_out_at = True, month_start(0, 1)
    page = signed_in_client(app, db).get("/staff/dashboard").get_data(as_text=True)
    assert figure(page, "not_answered") == "2"  # g2 and g5; not g3 (opted out), g4 (left), o
    assert row(page, "data-cohort", row_id(db, "Las 2"))[-1] == "2"
    assert row(page, "data-cohort", row_id(db, "Las 3"))[-1] == "0"


def row_id(db, name: str) -> int:
    from sqlalchemy import select

    from bot.models import Cohort

    with db.session() as s:
        return s.scalar(select(Cohort.id).where(Cohort.name == name))
