"""The reply log: filters, keyset paging, escaping, viewer scope, and its CSV/XLSX export."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import event, select

from bot.models import (
    INBOUND,
    MSG_DELIVERED,
    MSG_FAILED,
    MSG_RECEIVED,
    OUTBOUND,
    AuditLog,
    CheckInRound,
    Graduate,
    Message,
    ProgressReport,
)
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import signed_in_client

# 16:30 UTC is 23:30 in Jakarta (1 May); 17:30 UTC is already 00:30 on 2 May.
LATE_1_MAY = datetime(2024, 5, 1, 16, 30, tzinfo=UTC)
EARLY_2_MAY = datetime(2024, 5, 1, 17, 30, tzinfo=UTC)


def add_message(session, graduate: Graduate, body: str, at: datetime, *,
                direction: str = INBOUND, status: str | None = None) -> Message:
    message = Message(direction=direction, graduate_id=graduate.id, cohort_id=graduate.cohort_id,
                      phone=graduate.phone, kind="inbound" if direction == INBOUND else "reply",
                      body=body, created_at=at,
                      status=status or (MSG_RECEIVED if direction == INBOUND else MSG_DELIVERED))
    session.add(message)
    session.flush()
    return message


@pytest.fixture
def log_data(db):
    """LPKS A'nur (Menjahit 3: Siti, Budi, Dewi) and LPKS Baja (Las 1: Eko), with messages."""
    with db.session() as s:
        menjahit = make_cohort(s, name="Menjahit 3", institution="LPKS A'nur")
        las = make_cohort(s, name="Las 1", institution="LPKS Baja", skill="las")
        siti, budi, dewi = make_graduates(s, menjahit, count=3)
        siti.name, budi.name, dewi.name = "Siti Aminah", "Budi Santoso", "Dewi Lestari"
        (eko,) = make_graduates(s, las, count=1, first_phone=6281300000001)
        eko.name = "Eko Prasetyo"
        older = CheckInRound(cohort_id=menjahit.id, scheduled_for=LATE_1_MAY - timedelta(days=60))
        newer = CheckInRound(cohort_id=menjahit.id, scheduled_for=LATE_1_MAY - timedelta(days=30))
        las_round = CheckInRound(cohort_id=las.id, scheduled_for=LATE_1_MAY - timedelta(days=30))
        s.add_all([older, newer, las_round])
        s.flush()
        # Siti needed help once, not any more; Budi needs help now; Dewi wrote only spaces.
        # (Help is each graduate's latest word on it: here, their completed check-ins.)
        def done(round_, graduate, status, help_text):
            return ProgressReport(round_id=round_.id, graduate_id=graduate.id,
                                  employment_status=status, needs_help=help_text,
                                  completed_at=round_.scheduled_for + timedelta(hours=1))
        s.add(done(older, siti, "seeking", "butuh mesin"))
        s.flush()
        s.add_all([done(newer, siti, "employed", None),
                   done(newer, budi, "seeking", "butuh modal usaha"),
                   done(newer, dewi, "seeking", "   "),
                   done(las_round, eko, "self_employed", "alat las")])
        ids = {
            "siti_late": add_message(s, siti, "Sudah KERJA di pabrik sepatu", LATE_1_MAY).id,
            "siti_reply": add_message(s, siti, "Terima kasih, Kak Siti!", LATE_1_MAY
                                      + timedelta(minutes=1), direction=OUTBOUND).id,
            "budi_early": add_message(s, budi, "blm dpt kerja, 100% mau kerja", EARLY_2_MAY).id,
            "budi_failed": add_message(s, budi, "Info lowongan", EARLY_2_MAY
                                       + timedelta(hours=1), direction=OUTBOUND,
                                       status=MSG_FAILED).id,
            "dewi": add_message(s, dewi, "jualan online kak", EARLY_2_MAY + timedelta(days=1)).id,
            "eko": add_message(s, eko, "sdh kerja di bengkel las", EARLY_2_MAY).id,
        }
        return {"ids": ids, "menjahit": menjahit.id, "las": las.id,
                "anur": menjahit.institution_id, "baja": las.institution_id,
                "graduates": {g.name: g.id for g in (siti, budi, dewi, eko)}}


def shown_ids(response) -> list[int]:
    assert response.status_code == 200, response.status_code
    html = response.get_data(as_text=True)
    return [int(i) for i in re.findall(r'<tr class="msg (?:in|out)" data-id="(\d+)"', html)]


def test_the_log_needs_a_signed_in_user(client):
    response = client.get("/staff/log")
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]


def test_everything_newest_first_for_an_admin(app, db, log_data):
    ids = log_data["ids"]
    admin = signed_in_client(app, db)
    assert shown_ids(admin.get("/staff/log")) == sorted(ids.values(), reverse=True)


@pytest.mark.parametrize(("query", "expected"), [
    ("direction=out", {"siti_reply", "budi_failed"}),
    ("direction=in", {"siti_late", "budi_early", "dewi", "eko"}),
    ("status=failed", {"budi_failed"}),
    ("q=kerja", {"siti_late", "budi_early", "eko"}),  # "KERJA" too: case does not matter
    ("q=100%25", {"budi_early"}),  # % is a plain character, not a wildcard
    ("q=_", set()),
    ("q=kerja&direction=in&cohort_id={menjahit}", {"siti_late", "budi_early"}),
    ("institution_id={baja}", {"eko"}),
    ("from=2024-05-01&to=2024-05-01", {"siti_late", "siti_reply"}),
    ("from=2024-05-02&to=2024-05-02", {"budi_early", "budi_failed", "eko"}),
    ("from=2024-05-03", {"dewi"}),
    ("to=2024-05-01", {"siti_late", "siti_reply"}),
    ("needs_help=1", {"budi_early", "budi_failed", "eko"}),
    ("needs_help=1&cohort_id={menjahit}", {"budi_early", "budi_failed"}),
])
def test_filters_return_exactly_the_matching_messages(app, db, log_data, query, expected):
    admin = signed_in_client(app, db)
    url = "/staff/log?" + query.format(**log_data)
    assert set(shown_ids(admin.get(url))) == {log_data["ids"][k] for k in expected}


@pytest.mark.parametrize(("term", "expected"), [
    ("a.b", {"a.b"}), ("(y)", {"x(y) ok"}), ("\\", {"p\\q"}), ("c*", {"c*d"}),
    ("[a-z]", {"[a-z]"}), ("^x", {"^x$"}), ("X$", {"^x$"}), ("d|", set()), ("/", {"1/2"}),
])
def test_search_text_is_plain_text_on_every_database(app, db, log_data, term, expected):
    bodies = ["a.b", "axb", "x(y) ok", "p\\q", "c*d", "cd", "[a-z]", "^x$", "1/2", "12"]
    with db.session() as s:
        dewi = s.get(Graduate, log_data["graduates"]["Dewi Lestari"])
        made = {add_message(s, dewi, body, datetime(2024, 7, 1, tzinfo=UTC)).id: body
                for body in bodies}
    admin = signed_in_client(app, db)
    response = admin.get("/staff/log", query_string={"q": term})
    assert {made[i] for i in shown_ids(response) if i in made} == expected


def test_the_search_leaves_out_checkin_questions_and_reminders(app, db, log_data):
    """They are the catalog's texts, the same for everyone; what people wrote, Kabar's
    answers and job openings are searched. On PostgreSQL through the trigram index."""
    at = datetime(2024, 7, 2, tzinfo=UTC)
    with db.session() as s:
        siti = s.get(Graduate, log_data["graduates"]["Siti Aminah"])
        made = {}
        for kind, direction, body in (
                ("checkin", OUTBOUND, "Halo Siti, bagaimana kabar pekerjaanmu sekarang?"),
                ("reminder", OUTBOUND, "Siti, kami masih menunggu kabar pekerjaanmu"),
                ("job_opening", OUTBOUND, "Lowongan: operator jahit, kabar pekerjaanmu"),
                ("inbound", INBOUND, "kabar pekerjaanmu baik kak"),
                ("reply", OUTBOUND, "Terima kasih atas kabar pekerjaanmu")):
            message = add_message(s, siti, body, at, direction=direction)
            message.kind = kind
            made[message.id] = kind
    admin = signed_in_client(app, db)
    found = {made[i] for i in shown_ids(admin.get("/staff/log",
                                                  query_string={"q": "kabar pekerjaanmu"}))
             if i in made}
    assert found == {"job_opening", "inbound", "reply"}
    export = admin.get("/staff/log/export.csv", query_string={"q": "kabar pekerjaanmu"})
    assert len(read_csv(export)) == 3  # the export holds what the page shows
    if db.engine.dialect.name == "postgresql":
        from bot.exports import filter_messages

        stmt = filter_messages(select(Message.id), {"text": "kapal selam"})
        with db.engine.connect() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table: ask for the index
            compiled = stmt.compile(dialect=conn.dialect)
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(
                f"EXPLAIN {compiled}", compiled.params))
        assert "ix_messages_body_trgm" in plan, plan


def test_a_date_that_is_not_a_date_is_explained_and_ignored(app, db, log_data):
    admin = signed_in_client(app, db)
    response = admin.get("/staff/log?from=kemarin")
    assert "kemarin" in response.get_data(as_text=True)
    assert len(shown_ids(response)) == len(log_data["ids"])


def test_paging_by_keyset_has_no_duplicates_and_no_gaps(app, db, log_data):
    with db.session() as s:
        siti = s.get(Graduate, log_data["graduates"]["Siti Aminah"])
        start = datetime(2024, 6, 1, tzinfo=UTC)
        for i in range(117):
            add_message(s, siti, f"pesan {i}", start + timedelta(minutes=i))
        expected = list(s.scalars(select(Message.id).order_by(Message.id.desc())))
    admin = signed_in_client(app, db)
    seen, url, pages = [], "/staff/log", []
    while url:
        response = admin.get(url)
        page = shown_ids(response)
        pages.append(len(page))
        seen += page
        older = re.search(r'href="([^"]+)" rel="next"', response.get_data(as_text=True))
        url = older.group(1).replace("&amp;", "&") if older else None
    assert pages == [50, 50, 23]
    assert seen == expected

    # Back again with "newer": the page before the last one, exactly.
    last = admin.get(f"/staff/log?before_id={expected[99]}")
    newer = re.search(r'href="([^"]+)" rel="prev"', last.get_data(as_text=True)).group(1)
    assert shown_ids(admin.get(newer.replace("&amp;", "&"))) == expected[50:100]


def test_paging_keeps_the_filters(app, db, log_data):
    with db.session() as s:
        siti = s.get(Graduate, log_data["graduates"]["Siti Aminah"])
        for i in range(60):
            add_message(s, siti, f"modal {i}", datetime(2024, 6, 1, tzinfo=UTC))
            add_message(s, siti, f"lain {i}", datetime(2024, 6, 1, tzinfo=UTC))
    admin = signed_in_client(app, db)
    first = admin.get("/staff/log?q=modal").get_data(as_text=True)
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "q=modal" in older
    assert len(shown_ids(admin.get(older))) == 10


def test_the_page_counts_nothing_and_skips_nothing(app, db, log_data):
    """Keyset paging: no COUNT over the messages and no OFFSET beyond 0, on any page."""
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    admin = signed_in_client(app, db)
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        admin.get("/staff/log?q=kerja")
        admin.get(f"/staff/log?before_id={log_data['ids']['dewi']}")
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    on_messages = [s for s, _ in statements if "FROM messages" in s]
    assert on_messages
    assert not [s for s in on_messages if "count(" in s.lower()]
    assert not [s for s in on_messages if re.search(r"OFFSET [1-9]", s)]


def test_what_a_graduate_wrote_is_shown_as_text(app, db, log_data):
    with db.session() as s:
        dewi = s.get(Graduate, log_data["graduates"]["Dewi Lestari"])
        add_message(s, dewi, "<script>alert(1)</script> & <b>tebal</b>", datetime.now(UTC))
        dewi.name = '<img src=x onerror="alert(2)">'
    html = signed_in_client(app, db).get("/staff/log").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;tebal&lt;/b&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_rows_link_to_the_graduate_and_the_cohort_timeline(app, db, log_data):
    html = signed_in_client(app, db).get("/staff/log").get_data(as_text=True)
    with app.test_request_context():
        from bot.staff.replylog import console_link

        graduate = console_link("staff.graduate", graduate_id=log_data["graduates"]["Eko Prasetyo"])
        timeline = console_link("staff.timeline", cohort_id=log_data["las"])
    assert f'href="{graduate}"' in html and f'href="{timeline}"' in html


def test_a_viewer_sees_only_their_institution(app, db, log_data):
    viewer = signed_in_client(app, db, "wati", "viewer", institution="LPKS A'nur")
    ids = log_data["ids"]
    shown = set(shown_ids(viewer.get("/staff/log")))
    assert shown == {v for k, v in ids.items() if k != "eko"}
    html = viewer.get("/staff/log").get_data(as_text=True)
    assert "Las 1" not in html and "LPKS Baja" not in html and "Eko" not in html
    # Searching for Eko's words finds nothing; the other institution's objects do not exist.
    assert shown_ids(viewer.get("/staff/log?q=bengkel")) == []
    assert viewer.get(f"/staff/log?cohort_id={log_data['las']}").status_code == 404
    assert viewer.get(f"/staff/log?institution_id={log_data['baja']}").status_code == 404
    assert viewer.get(f"/staff/log/export.csv?cohort_id={log_data['las']}").status_code == 404
    assert viewer.get(f"/staff/log/export.xlsx?institution_id={log_data['baja']}").status_code \
        == 404
    assert viewer.get("/staff/log?cohort_id=99999").status_code == 404


def cohort_options(html: str) -> list[str]:
    select_ = re.search(r'<select name="cohort_id">(.*?)</select>', html, re.S).group(1)
    return re.findall(r'<option value="(\d+)"', select_)


def test_with_many_cohorts_the_filter_lists_one_institutions_cohorts(app, db, log_data,
                                                                     monkeypatch):
    """A province has thousands of cohorts: past COHORT_OPTIONS_MAX the cohort filter lists
    the chosen institution's (or only the chosen cohort) and the rows still name their cohort."""
    monkeypatch.setattr("bot.staff.replylog.COHORT_OPTIONS_MAX", 1)
    admin = signed_in_client(app, db)
    everything = admin.get("/staff/log")
    html = everything.get_data(as_text=True)
    assert cohort_options(html) == []
    assert "(pilih LPKS dulu untuk memilih paket)" in html
    assert "LPKS Baja" in html and "Las 1" in html  # the institution filter and Eko's row
    assert set(shown_ids(everything)) == set(log_data["ids"].values())
    html = admin.get(f"/staff/log?institution_id={log_data['baja']}").get_data(as_text=True)
    assert cohort_options(html) == [str(log_data["las"])]
    assert "pilih LPKS dulu" not in html
    chosen = admin.get(f"/staff/log?cohort_id={log_data['menjahit']}")
    assert cohort_options(chosen.get_data(as_text=True)) == [str(log_data["menjahit"])]
    assert set(shown_ids(chosen)) == {v for k, v in log_data["ids"].items() if k != "eko"}
    viewer = signed_in_client(app, db, "wati", "viewer", institution="LPKS A'nur")
    html = viewer.get("/staff/log").get_data(as_text=True)
    assert cohort_options(html) == [str(log_data["menjahit"])] and "Las 1" not in html


def read_csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    text = response.get_data().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_the_export_holds_the_filtered_view_and_is_audited(app, db, log_data):
    admin = signed_in_client(app, db, "rina", "admin")
    response = admin.get(f"/staff/log/export.csv?q=kerja&cohort_id={log_data['menjahit']}")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = read_csv(response)
    assert [r["Isi pesan"] for r in rows] == ["Sudah KERJA di pabrik sepatu",
                                             "blm dpt kerja, 100% mau kerja"]
    assert {r["Peserta"] for r in rows} == {"Siti Aminah", "Budi Santoso"}
    with db.session() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "export")).one()
    assert entry.actor == "rina"
    assert entry.detail["what"] == "messages" and entry.detail["rows"] == 2
    assert entry.detail["filters"]["text"] == "kerja"
    assert entry.detail["filters"]["cohort_id"] == [log_data["menjahit"]]


def test_the_export_follows_needs_help_and_dates(app, db, log_data):
    admin = signed_in_client(app, db)
    rows = read_csv(admin.get("/staff/log/export.csv?needs_help=1&from=2024-05-02&to=2024-05-02"))
    assert sorted(r["Isi pesan"] for r in rows) == sorted([
        "blm dpt kerja, 100% mau kerja", "Info lowongan", "sdh kerja di bengkel las"])
    # dd/mm/yyyy HH:MM in the office's time zone (Asia/Jakarta), as on the page.
    assert all(re.fullmatch(r"02/05/2024 \d\d:\d\d", r["Waktu"]) for r in rows)


def test_the_export_reads_as_the_page_in_the_chosen_language(app, db, log_data):
    admin = signed_in_client(app, db)
    rows = read_csv(admin.get("/staff/log/export.csv?lang=id"))
    kinds = {(r["Arah"], r["Jenis"], r["Status"]) for r in rows}
    assert ("Masuk", "pesan peserta", "diterima") in kinds
    assert ("Keluar", "balasan", "gagal") in kinds
    page = admin.get("/staff/log").get_data(as_text=True)
    assert "Keluar · balasan" in page and "Masuk · pesan peserta" in page
    assert "· reply" not in page and "· inbound" not in page
    rows = read_csv(admin.get("/staff/log/export.csv?lang=en"))
    assert list(rows[0])[:3] == ["Twilio SID", "Direction", "WhatsApp number"]
    assert ("Out", "reply", "failed") in {(r["Direction"], r["Kind"], r["Status"])
                                          for r in rows}


def test_a_viewers_export_holds_only_their_institution(app, db, log_data):
    viewer = signed_in_client(app, db, "wati", "viewer", institution="LPKS A'nur")
    rows = read_csv(viewer.get("/staff/log/export.csv"))
    assert len(rows) == 5 and "Las 1" not in {r["Paket"] for r in rows}
    response = viewer.get("/staff/log/export.xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.get_data())).active
    values = list(sheet.iter_rows(values_only=True))
    header, data = values[0], values[1:]
    assert len(data) == 5
    cohort = header.index("Paket")
    assert {row[cohort] for row in data} == {"Menjahit 3"}
    with db.session() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "export",
                                                 AuditLog.detail["format"].as_string() == "xlsx")
                          ).one()
    assert entry.actor == "wati" and entry.detail["filters"]["cohort_id"] == [log_data["menjahit"]]


def test_numbers_too_large_to_be_ids_are_404_not_errors(app, db, log_data):
    admin = signed_in_client(app, db)
    huge = "9" * 25
    for url in (f"/staff/log?before_id={huge}", f"/staff/log?cohort_id={huge}",
                f"/staff/log/export.csv?institution_id={huge}", f"/staff/roster?after={huge}",
                f"/staff/roster/{huge}/edit", f"/staff/audit?before_id={huge}",
                f"/staff/users/{huge}", "/staff/log?cohort_id=abc"):
        assert admin.get(url).status_code == 404, url


def test_english_texts_are_one_click_away(app, db, log_data):
    admin = signed_in_client(app, db)
    assert "Log balasan" in admin.get("/staff/log").get_data(as_text=True)
    assert "Reply log" in admin.get("/staff/log?lang=en").get_data(as_text=True)
