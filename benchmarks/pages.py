"""Server time of the staff console's pages on a big database (20,000 graduates, 200,000 messages).

    python benchmarks/pages.py [--graduates 20000] [--messages 200000] [--repeat 30]
                               [--database-url URL] [--explain] [--keep] [--only TEXT]

What it does:

1. **Database.** Without ``--database-url``: SQLite in a temporary folder (removed at the end
   unless ``--keep``). With it: that database, which must be empty (PostgreSQL: create one,
   e.g. ``createdb -h 127.0.0.1 -U postgres kabar_pages``, and drop it afterwards). The schema
   is made by ``bot.migrate.upgrade(url)``, then filled with Core ``executemany`` inserts in
   chunks (explicit ids, so rows reference each other without reading back): 2-10
   institutions, cohorts of about 20 (one big cohort of up to 400 graduates holding at least
   20,000 messages, two of 100), monthly check-in rounds on the 1st at 09:00 (several for the
   big ones, one to three for the others, a few manual, a few a graduate's own ``CEK``) with
   their progress reports (varied status, employer, skill use, ratings, needs help), job
   openings with their broadcasts and ``MINAT`` interests, opt-outs with their consent
   events, and small talk (``makasih``, ``LOWONGAN``, voice notes) up to exactly
   ``--messages`` messages over the last year, ids in time order as the webhook and the
   outbox make them. Outbound statuses: read, delivered, sent, queued, failed, undelivered
   (with Twilio error codes); inbound ``handled``. The stored summaries (each graduate's latest
   answer, each round's counts) are then computed by ``bot.summaries.rebuild``, since Core
   inserts bypass the flush that keeps them current. PostgreSQL gets ``ANALYZE`` afterwards (what
   autovacuum does after a load); SQLite does not, as Kabar never runs it (``--analyze`` to
   compare). A staff admin and a viewer of the big cohort's institution are added.
2. **Pages.** The app is built in process (``bot.create_app``) and read with Flask's test client
   signed in as the admin (and the viewer): warm-up requests first, then ``--repeat`` rounds
   over every page (round-robin, so load from other work on the machine spreads evenly). The
   time of a page is from ``client.get`` to the last byte of the body (``time.perf_counter``).
   Every SQL statement is counted (``before/after_cursor_execute``). Afterwards each page's
   SELECTs are run again on their own, every row fetched (inside a request SQLite's time would
   stop at the first row): the SQL time of the page and its slowest statements.
3. **Report.** Median, p90 and max per page, the number of statements, the SQL time, and the
   two slowest statements of each page; PASS/FAIL for the pages the issue names (dashboard,
   timeline page, reply-log search) against ``--target-ms`` (150) at the median. ``--explain``
   adds the query plan of each page's slowest statement (EXPLAIN QUERY PLAN on SQLite,
   EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL).

Exit status: 0 PASS; 1 a page did not answer 200 (or the harness failed); 2 a named page is
over the target.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the checkout this script is in, installed or not

ADMIN, VIEWER = "bench-admin", "bench-viewer"
PASSWORD = "bench-password-123"
BIG_JOIN_CODE = "BIGKITB"
ZONE = ZoneInfo("Asia/Jakarta")
CHUNK = 5000

INSTITUTION_NAMES = (
    "LPKS A'nur", "LPKS Nisfisano", "BLK Kota Pekalongan", "LPK Mitra Karya",
    "LPKS Batik Kauman", "LPK Tunas Mandiri", "LPKS Sinar Jaya", "BLK Batang",
    "LPK Bina Terampil", "LPKS Citra Kusuma",
)
SKILLS = (("menjahit", "Menjahit"), ("bordir", "Bordir"), ("tata boga", "Tata Boga"),
          ("las", "Pengelasan"), ("otomotif", "Otomotif"), ("komputer", "Operator Komputer"),
          ("tata rias", "Tata Rias"), ("barista", "Barista"))
FIRST_NAMES = (
    "Siti", "Dewi", "Nur", "Sri", "Rina", "Ayu", "Fitri", "Wulan", "Eka", "Putri", "Indah",
    "Laila", "Nabila", "Umi", "Tri", "Yuni", "Ratna", "Anisa", "Dian", "Mega", "Ahmad", "Budi",
    "Agus", "Rizki", "Fajar", "Dimas", "Yusuf", "Hendra", "Khoirul", "Bayu", "Slamet", "Joko",
)
LAST_NAMES = (
    "Rahmawati", "Setiawan", "Hidayat", "Lestari", "Susanti", "Pratama", "Wahyuni", "Maulana",
    "Nugroho", "Handayani", "Kurniawan", "Safitri", "Saputra", "Fauziah", "Ramadhan",
    "Anggraini", "Santoso", "Utami", "Firmansyah", "Rohmah", "Mahmudah", "Prasetyo",
)
EMPLOYERS = ("pabrik sepatu di KITB Batang", "konveksi Bu Siti, Pekalongan",
             "garmen PT Pekalongan Jaya", "butik batik Kauman", "penjahit Pasar Banjarsari",
             "katering Sari Rasa", "bengkel Jaya Motor", "rumah makan Pak Darto",
             "salon Ayu Kedungwuni", "warnet dan fotokopi Berkah")
BUSINESSES = ("jahit baju di rumah", "jualan online baju batik", "permak jeans dan vermak",
              "terima jahitan seragam sekolah", "bordir kerudung pesanan", "jualan kue kering",
              "servis motor di rumah", "rias pengantin panggilan", "kopi keliling")
HELP_NOTES = ("butuh mesin jahit sendiri", "modal untuk beli kain", "info lowongan di Batang",
              "pelatihan lanjutan membuat pola", "belum punya ongkos ke pabrik",
              "mesin jahit saya rusak, butuh servis", "butuh sertifikat keahlian")
STATUS_REPLIES = {
    "employed": ("1", "1.", "satu", "sudah kerja", "udh kerja kak", "sdh kerja di pabrik"),
    "self_employed": ("2", "dua", "usaha sendiri", "jualan online"),
    "seeking": ("3", "3️⃣", "blm dpt kerja", "belum kerja masih nyari"),
    "studying": ("4", "lanjut kursus", "lanjut sekolah"),
}
YES_REPLIES = ("ya", "iya", "y", "betul", "ok", "iya kak")
NO_REPLIES = ("tidak", "gak", "nggak", "belum")
NO_HELP = ("tidak ada", "tdk ada kak", "aman", "gak ada")
JOBS = (
    ("Operator jahit sepatu", "Pabrik sepatu di KITB", "Batang", "menjahit"),
    ("Penjahit garmen", "Konveksi Batik Pesindon", "Kota Pekalongan", "menjahit"),
    ("Tukang bordir", "Butik Bordir Kedungwuni", "Kab. Pekalongan", "bordir"),
    ("Juru masak katering", "Katering Sari Rasa", "Kota Pekalongan", "tata boga"),
    ("Juru las konstruksi", "PT Baja Pantura", "Batang", "las"),
    ("Mekanik motor", "Bengkel Jaya Motor", "Pemalang", "otomotif"),
    ("Admin gudang", "Toko Grosir Sentosa", "Kota Pekalongan", "komputer"),
    ("Operator jahit garmen", "Garmen PT Pekalongan Jaya", "Kab. Pekalongan", "menjahit"),
)
SMALL_TALK = ("makasih", "ok kak", "siap", "terima kasih pak", "MENU", "LOWONGAN", "lowongan",
              "info lowongan jahit dong", "CEK", "assalamualaikum", "halo", "👍", "🙏")
FAILURES = (("failed", "63016", "Failed to send freeform message because you are outside the "
                                "allowed window"),
            ("failed", "63024", "Invalid message recipient"),
            ("undelivered", "63003", "Channel could not find To address"),
            ("undelivered", "30008", "Unknown error"))


# --------------------------------------------------------------------------------------------
# The data set, planned in memory with explicit ids.


class Msg:
    __slots__ = ("at", "direction", "graduate", "kind", "body", "status", "round_id",
                 "broadcast_id", "dedupe_key", "media_url", "media_type", "id", "small")

    def __init__(self, at, direction, graduate, kind, body, status="", round_id=None,
                 broadcast_id=None, dedupe_key=None, media_url=None, media_type=None,
                 small=False):
        self.at, self.direction, self.graduate, self.kind, self.body = (
            at, direction, graduate, kind, body)
        self.status, self.round_id, self.broadcast_id, self.dedupe_key = (
            status, round_id, broadcast_id, dedupe_key)
        self.media_url, self.media_type, self.small, self.id = media_url, media_type, small, 0


@dataclass
class CohortPlan:
    id: int
    institution_id: int
    name: str
    skill: str
    join_code: str
    training_end: date
    members: list[int] = field(default_factory=list)
    budget: int = 0
    respond: float = 0.6
    round_times: list[tuple[datetime, str]] = field(default_factory=list)
    made: int = 0


@dataclass
class Plan:
    institutions: list[dict] = field(default_factory=list)
    cohorts: list[CohortPlan] = field(default_factory=list)
    graduates: list[dict] = field(default_factory=list)  # index = id - 1
    rounds: list[dict] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)
    jobs: list[dict] = field(default_factory=list)
    broadcasts: list[dict] = field(default_factory=list)
    interests: list[dict] = field(default_factory=list)
    consents: list[tuple[int, Msg, datetime]] = field(default_factory=list)
    messages: list[Msg] = field(default_factory=list)


def local_at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def month_starts(now: datetime, count: int = 12) -> list[datetime]:
    """The 1st of the last ``count`` months at 09:00 local (the default schedule), oldest first."""
    today = now.astimezone(ZONE).date()
    year, month = today.year, today.month
    starts = []
    for _ in range(count):
        at = local_at(date(year, month, 1), 9)
        if at < now:
            starts.append(at)
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return sorted(starts)


class Planner:
    """Builds a ``Plan`` of ``graduates`` and exactly ``messages`` messages over the last year."""

    COST = 6.6  # messages per graduate and round: prompt, ~62% answer 3-5 questions, reminders

    def __init__(self, graduates: int, messages: int, seed: int, now: datetime) -> None:
        from bot import catalog

        self.n, self.m, self.now = graduates, messages, now
        self.rng = random.Random(seed)
        self.plan = Plan()
        self.year_ago = now - timedelta(days=365)
        self.text = lambda key, **v: catalog.text("id", key, **v)
        self.menu = self.text("menu")
        self.jobs_list = self.text("jobs.header") + "\n" + self.text("jobs.footer")
        self.media_reply = self.text("media_please_type")
        self.optout_reply = self.text("optout_confirm")
        self.questions = {k: self.text(f"checkin.{k}") for k in (
            "ask_employer", "ask_uses_skill", "ask_business", "ask_job_alerts", "ask_rating",
            "ask_help")}
        self.graduate_cohort: dict[int, CohortPlan] = {}
        self.last_inbound: dict[int, datetime] = {}

    # -- people ---------------------------------------------------------------------------

    def people(self) -> None:
        rng, p = self.rng, self.plan
        n_inst = min(10, max(2, round(self.n / 3500)))
        p.institutions = [{"id": i + 1, "name": INSTITUTION_NAMES[i],
                           "created_at": self.year_ago - timedelta(days=200)}
                          for i in range(n_inst)]
        big = min(400, max(20, self.n // 50))
        sizes = [big] + ([100, 100] if self.n >= big + 400 else [])
        left = self.n - sum(sizes)
        while left > 0:
            size = min(left, rng.randint(15, 25))
            sizes.append(size)
            left -= size
        weights = [3, 2, 2] + [1] * (n_inst - 3)
        counters: dict[tuple[int, str], int] = {}
        next_graduate = 1
        for index, size in enumerate(sizes):
            if index == 0:
                institution, (skill, label) = 1, SKILLS[0]
                name, code = "Operator Jahit KITB", BIG_JOIN_CODE
            else:
                institution = rng.choices(range(1, n_inst + 1), weights=weights[:n_inst])[0]
                skill, label = rng.choices(SKILLS, weights=(6, 2, 3, 2, 2, 2, 1, 1))[0]
                counters[(institution, skill)] = counters.get((institution, skill), 0) + 1
                name = f"{label} {counters[(institution, skill)]}"
                code = f"P{index:05d}"
            if index < 3:  # the big ones trained more than a year ago
                end = (self.year_ago - timedelta(days=rng.randint(20, 60))).date()
            else:
                end = (self.now - timedelta(days=rng.randint(40, 420))).date()
            cohort = CohortPlan(index + 1, institution, name, skill, code, end,
                                respond=rng.uniform(0.45, 0.8))
            for _ in range(size):
                gid = next_graduate
                next_graduate += 1
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                joined = local_at(end, 10) + timedelta(minutes=rng.randint(0, 600))
                p.graduates.append({
                    "id": gid, "cohort_id": cohort.id, "name": f"{first} {last}",
                    "phone": f"+62812{10_000_000 + gid:08d}", "skill": skill, "language": "id",
                    "active": rng.random() > 0.01, "opted_out": False, "opted_out_at": None,
                    "last_inbound_at": None, "last_menu_at": None, "created_at": joined,
                    "updated_at": joined})
                cohort.members.append(gid)
                self.graduate_cohort[gid] = cohort
            p.cohorts.append(cohort)

    def receivable(self, gid: int, at: datetime) -> bool:
        g = self.plan.graduates[gid - 1]
        return g["active"] and (g["opted_out_at"] is None or g["opted_out_at"] > at) \
            and g["created_at"] < at

    # -- messages ---------------------------------------------------------------------------

    def out(self, at: datetime, gid: int, kind: str, body: str, **extra) -> Msg:
        message = Msg(at, "out", gid, kind, body, **extra)
        self.plan.messages.append(message)
        self.graduate_cohort[gid].made += 1
        return message

    def inbound(self, at: datetime, gid: int, body: str, **extra) -> Msg:
        message = Msg(at, "in", gid, "inbound", body, "handled", **extra)
        self.plan.messages.append(message)
        self.graduate_cohort[gid].made += 1
        if at > self.last_inbound.get(gid, self.year_ago):
            self.last_inbound[gid] = at
        return message

    def between(self, start: datetime, end: datetime) -> datetime:
        span = max(1.0, (end - start).total_seconds())
        return start + timedelta(seconds=self.rng.uniform(0, span))

    def opt_outs(self) -> None:
        rng = self.rng
        for g in self.plan.graduates:
            if g["active"] and rng.random() < 0.02:
                at = self.between(max(g["created_at"], self.year_ago) + timedelta(days=5),
                                  self.now - timedelta(hours=2))
                g["opted_out"], g["opted_out_at"], g["updated_at"] = True, at, at
                said = self.inbound(at, g["id"], rng.choice(("BERHENTI", "STOP", "berhenti")))
                self.out(at + timedelta(seconds=3), g["id"], "optout_confirm", self.optout_reply)
                self.plan.consents.append((g["id"], said, at))

    def job_openings(self) -> None:
        rng, p = self.rng, self.plan
        cap = self.m * 0.07  # job openings take at most about 7% of the messages
        by_skill: dict[str, list[CohortPlan]] = {}
        for c in p.cohorts:
            by_skill.setdefault(c.skill, []).append(c)
        made = 0
        for index, (title, employer, location, skill) in enumerate(JOBS):
            created = self.year_ago + timedelta(days=20 + index * 43, hours=rng.randint(0, 8))
            if created >= self.now - timedelta(days=1):
                continue
            code = f"J{index:02d}{rng.randint(100, 999)}"
            deadline = (created + timedelta(days=30)).astimezone(ZONE).date()
            job_id = len(p.jobs) + 1
            p.jobs.append({"id": job_id, "code": code, "title": title, "employer": employer,
                           "location": location, "skill": skill, "deadline": deadline,
                           "closed": False, "created_by": ADMIN, "created_at": created})
            targets = [c for c in by_skill.get(skill, []) if rng.random() < 0.5]
            if skill == "menjahit":
                targets = [p.cohorts[0]] + [c for c in targets if c.id != 1]
            body = self.text("job.opening", title=title, employer=employer, location=location,
                             deadline=f"{deadline:%d-%m-%Y}", code=code)
            broadcast_id = len(p.broadcasts) + 1
            count = 0
            for cohort in targets:
                if made >= cap:
                    break
                for gid in cohort.members:
                    if not self.receivable(gid, created):
                        continue
                    at = created + timedelta(seconds=count // 10)  # the outbox's pace
                    self.out(at, gid, "job_opening", body, broadcast_id=broadcast_id,
                             dedupe_key=f"broadcast:{broadcast_id}:{gid}")
                    count += 1
                    made += 1
                    if rng.random() < 0.04:
                        said = at + timedelta(minutes=rng.randint(3, 2000))
                        if said < self.now:
                            self.inbound(said, gid, f"MINAT {code}" if rng.random() < 0.8
                                         else f"minat {code.lower()}")
                            self.out(said + timedelta(seconds=2), gid, "reply", self.text(
                                "interest.recorded", title=title, employer=employer))
                            p.interests.append({"job_id": job_id, "graduate_id": gid,
                                                "created_at": said})
                            made += 2
            p.broadcasts.append({
                "id": broadcast_id, "kind": "job_opening", "job_id": job_id, "body": body,
                "target": {"cohort_ids": [c.id for c in targets], "skill": skill},
                "recipient_count": count, "created_by": ADMIN, "created_at": created})

    def budgets(self) -> None:
        """Each cohort's share of the messages, and the check-in rounds that fit in it."""
        rng, cohorts = self.rng, self.plan.cohorts
        big_share = max(20_000, int(0.12 * self.m)) if self.m >= 40_000 else self.m // 2
        cohorts[0].budget = big_share
        fixed = [cohorts[0]]
        if len(cohorts) > 2 and len(cohorts[1].members) == 100:
            for c in cohorts[1:3]:
                c.budget = int(0.03 * self.m)
                fixed.append(c)
        rest = [c for c in cohorts if c not in fixed]
        weights = [len(c.members) * rng.uniform(0.3, 2.2) for c in rest]
        left = self.m - sum(c.budget for c in fixed)
        total = sum(weights) or 1
        for c, w in zip(rest, weights, strict=True):
            c.budget = int(left * w / total)
        months = month_starts(self.now)
        for c in cohorts:
            reachable = max(1, sum(1 for g in c.members if self.plan.graduates[g - 1]["active"]))
            # What fits, rounded up or down at random so that on average it all fits (the
            # rest is small talk; a little too much is trimmed from the small talk at the end).
            fits = max(0, c.budget - c.made) * 0.95 / (reachable * self.COST)
            rounds = int(fits) + (rng.random() < fits - int(fits))
            rounds = max(1, min(len(months), rounds))
            step = max(1, len(months) // rounds)
            lowest = (rounds - 1) * step
            last = len(months) - 1 if rng.random() < 0.75 else rng.randint(lowest, len(months) - 1)
            for i in range(rounds):
                at = months[last - i * step]
                trigger = "schedule"
                if rng.random() < 0.08:  # staff started this one by hand, some days later
                    at += timedelta(days=rng.randint(1, 12), hours=rng.randint(0, 6))
                    trigger = "manual"
                if at < self.now - timedelta(hours=1):
                    c.round_times.append((at, trigger))

    def checkins(self) -> None:
        rng, p = self.rng, self.plan
        rounds = [(at, trigger, c, None) for c in p.cohorts for at, trigger in c.round_times]
        for g in p.graduates:  # a few graduates asked for a check-in themselves (CEK)
            if g["active"] and rng.random() < 0.005:
                at = self.between(max(g["created_at"], self.year_ago), self.now - timedelta(days=1))
                rounds.append((at, "self", self.graduate_cohort[g["id"]], g["id"]))
        rounds.sort(key=lambda r: r[0])
        seen = set()
        for at, trigger, cohort, only in rounds:
            if (cohort.id, at) in seen:
                continue
            seen.add((cohort.id, at))
            round_id = len(p.rounds) + 1
            p.rounds.append({"id": round_id, "cohort_id": cohort.id, "scheduled_for": at,
                             "trigger": trigger, "created_at": at})
            members = [only] if only else cohort.members
            for gid in members:
                if not self.receivable(gid, at):
                    continue
                self.report(round_id, cohort, gid, at, asked=only is not None)

    def report(self, round_id: int, cohort: CohortPlan, gid: int, at: datetime,
               asked: bool) -> None:
        rng = self.rng
        g = self.plan.graduates[gid - 1]
        report_id = len(self.plan.reports) + 1
        if asked:
            self.inbound(at - timedelta(seconds=5), gid, rng.choice(("CEK", "cek")))
        sent = at + timedelta(seconds=(len(self.plan.reports) % 600) // 10)
        self.out(sent, gid, "checkin",
                 self.text("checkin.prompt", name=g["name"], cohort=cohort.name),
                 round_id=round_id, dedupe_key=f"checkin:{round_id}:{gid}")
        row = {"id": report_id, "round_id": round_id, "graduate_id": gid, "status": "open",
               "employment_status": None, "employer": None, "uses_training_skill": None,
               "wants_job_alerts": None, "skill_rating": None, "needs_help": None,
               "raw_answers": {}, "created_at": sent, "responded_at": None,
               "completed_at": None, "reminded_at": None, "closed_at": None}
        self.plan.reports.append(row)
        expires = sent + timedelta(days=7)
        if asked or rng.random() < cohort.respond:
            when = sent + timedelta(minutes=rng.choice((rng.randint(2, 90), rng.randint(60, 2880))))
            if when >= self.now:
                return
            row["responded_at"] = when
            complete = rng.random() < 0.9
            for key, reply, question in self.answers(row, g["name"]):
                if when >= self.now:
                    return
                row["raw_answers"].setdefault(key, []).append(reply)
                self.inbound(when, gid, reply)
                when += timedelta(seconds=rng.randint(2, 6))
                if when < self.now:
                    self.out(when, gid, "reply", question)
                when += timedelta(seconds=rng.randint(20, 400))
                if not complete and key == "status":
                    break
            if complete:
                row["status"], row["completed_at"], row["closed_at"] = "completed", when, when
            elif expires < self.now:
                row["status"], row["closed_at"] = "unanswered", expires
            return
        remind = sent + timedelta(hours=48)
        if remind < self.now:
            row["reminded_at"] = remind
            self.out(remind, gid, "reminder",
                     self.text("checkin.reminder", name=g["name"], cohort=cohort.name),
                     round_id=round_id, dedupe_key=f"reminder:{report_id}")
        if expires < self.now:
            row["status"], row["closed_at"] = "unanswered", expires

    def answers(self, row: dict, name: str):
        rng, q = self.rng, self.questions
        status = rng.choices(list(STATUS_REPLIES), weights=(40, 20, 30, 10))[0]
        row["employment_status"] = status
        if status == "employed":
            row["employer"] = rng.choice(EMPLOYERS)
            row["uses_training_skill"] = rng.random() < 0.75
            yield "status", rng.choice(STATUS_REPLIES[status]), q["ask_employer"]
            yield "employer", row["employer"], q["ask_uses_skill"]
            yield "uses_skill", rng.choice(YES_REPLIES if row["uses_training_skill"]
                                           else NO_REPLIES), q["ask_rating"]
        elif status == "self_employed":
            row["employer"] = rng.choice(BUSINESSES)
            yield "status", rng.choice(STATUS_REPLIES[status]), q["ask_business"]
            yield "business", row["employer"], q["ask_rating"]
        elif status == "seeking":
            row["wants_job_alerts"] = rng.random() < 0.85
            yield "status", rng.choice(STATUS_REPLIES[status]), q["ask_job_alerts"]
            yield "job_alerts", rng.choice(YES_REPLIES if row["wants_job_alerts"]
                                           else NO_REPLIES), q["ask_rating"]
        else:
            yield "status", rng.choice(STATUS_REPLIES[status]), q["ask_rating"]
        row["skill_rating"] = rng.choices((1, 2, 3, 4, 5), weights=(4, 10, 35, 38, 13))[0]
        yield "rating", str(row["skill_rating"]), q["ask_help"]
        row["needs_help"] = rng.choice(HELP_NOTES) if rng.random() < 0.3 else None
        yield "help", row["needs_help"] or rng.choice(NO_HELP), \
            self.text("checkin.thanks", name=name)

    def small_talk(self) -> None:
        """Top every cohort up to its share; then trim or add to land on exactly ``messages``."""
        rng, p = self.rng, self.plan
        for cohort in p.cohorts:
            reachable = [g for g in cohort.members if p.graduates[g - 1]["active"]]
            while cohort.made < cohort.budget - 1 and reachable:
                self.chat(rng.choice(reachable))
        extra = len(p.messages) - self.m
        if extra > 0:
            chatter = [m for m in p.messages if m.small]
            drop = set(map(id, rng.sample(chatter, min(extra, len(chatter)))))
            p.messages = [m for m in p.messages if id(m) not in drop]
        everyone = [g["id"] for g in p.graduates if g["active"]]
        while len(p.messages) < self.m:
            self.chat(rng.choice(everyone), single=len(p.messages) == self.m - 1)

    def chat(self, gid: int, single: bool = False) -> None:
        rng = self.rng
        g = self.plan.graduates[gid - 1]
        start = max(g["created_at"], self.year_ago)
        end = min(g["opted_out_at"] or self.now, self.now) - timedelta(minutes=5)
        if end <= start:
            end = self.now - timedelta(minutes=5)
        at = self.between(start, end)
        if rng.random() < 0.05:
            self.inbound(at, gid, "", media_url="https://api.twilio.com/2010-04-01/Accounts/"
                         f"AC{'0' * 32}/Messages/MM{gid:032d}/Media/ME{gid:032d}",
                         media_type=rng.choice(("audio/ogg", "image/jpeg")), small=True)
            reply = self.media_reply
        else:
            said = rng.choice(SMALL_TALK)
            self.inbound(at, gid, said, small=True)
            reply = self.jobs_list if said.lower().startswith(("lowongan", "info")) else self.menu
        if not single:
            self.out(at + timedelta(seconds=3), gid, "reply", reply, small=True)

    def finish(self) -> None:
        """Order the messages by time, give them ids, and decide the outbound statuses."""
        rng, p = self.rng, self.plan
        p.messages.sort(key=lambda m: m.at)
        for index, m in enumerate(p.messages, start=1):
            m.id = index
            if m.direction == "out" and not m.status:
                age = self.now - m.at
                if age < timedelta(minutes=2):
                    m.status = rng.choice(("pending", "queued", "sent"))
                else:
                    m.status = rng.choices(("read", "delivered", "sent", "queued", "failed"),
                                           weights=(58, 25, 8, 2, 7))[0]
        for gid, at in self.last_inbound.items():
            p.graduates[gid - 1]["last_inbound_at"] = at

    def build(self) -> Plan:
        self.people()
        self.opt_outs()
        self.job_openings()
        self.budgets()
        self.checkins()
        self.small_talk()
        self.finish()
        return self.plan


# --------------------------------------------------------------------------------------------
# Writing the plan.


def message_rows(plan: Plan, rng: random.Random):
    graduates = plan.graduates
    for m in plan.messages:
        g = graduates[m.graduate - 1]
        error_code = error_message = None
        status = m.status
        if status == "failed":  # failed or undelivered, with Twilio's code
            status, error_code, error_message = rng.choice(FAILURES)
        outbound = m.direction == "out"
        sent = outbound and status not in ("pending", "sending")
        yield {
            "id": m.id, "direction": m.direction, "graduate_id": m.graduate,
            "cohort_id": g["cohort_id"], "phone": g["phone"], "kind": m.kind, "body": m.body,
            "media_url": m.media_url, "media_type": m.media_type,
            "twilio_sid": f"SM{m.id:032x}" if (sent or not outbound) else None,
            "dedupe_key": m.dedupe_key, "status": status, "error_code": error_code,
            "error_message": error_message, "attempts": 1 if sent else 0,
            "next_attempt_at": m.at if outbound else None, "claimed_at": None,
            "claimed_by": None, "round_id": m.round_id, "broadcast_id": m.broadcast_id,
            "created_at": m.at, "sent_at": m.at + timedelta(seconds=1) if sent else None,
            "updated_at": m.at + timedelta(seconds=rng.randint(1, 300)),
        }


def insert(conn, table, rows, label: str, started: float) -> None:
    """Chunked executemany inserts with a progress line."""
    rows = iter(rows)
    done = 0
    t0 = time.perf_counter()
    while True:
        chunk = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == CHUNK:
                break
        if not chunk:
            break
        conn.execute(table.insert(), chunk)
        done += len(chunk)
        if done % (CHUNK * 10) == 0:
            print(f"  {label}: {done:,} rows ({done / (time.perf_counter() - t0):,.0f}/s)",
                  flush=True)
    print(f"  {label}: {done:,} rows in {time.perf_counter() - t0:.1f}s "
          f"(at {time.perf_counter() - started:.1f}s)", flush=True)


def write(engine, plan: Plan, started: float) -> None:
    from bot.models import (
        Broadcast,
        CheckInRound,
        Cohort,
        ConsentEvent,
        Graduate,
        Institution,
        Interest,
        JobOpening,
        Message,
        ProgressReport,
    )

    rng = random.Random(7)
    with engine.begin() as conn:
        insert(conn, Institution.__table__, plan.institutions, "institutions", started)
        insert(conn, Cohort.__table__, (
            {"id": c.id, "institution_id": c.institution_id, "name": c.name,
             "skill": c.skill, "join_code": c.join_code, "checkin_schedule": None,
             "timezone": "Asia/Jakarta", "training_start": c.training_end - timedelta(days=19),
             "training_end": c.training_end, "active": True,
             "created_at": local_at(c.training_end - timedelta(days=25), 8),
             "updated_at": local_at(c.training_end, 8)} for c in plan.cohorts),
            "cohorts", started)
        insert(conn, Graduate.__table__, plan.graduates, "graduates", started)
        insert(conn, CheckInRound.__table__, plan.rounds, "check-in rounds", started)
        insert(conn, JobOpening.__table__, plan.jobs, "job openings", started)
        insert(conn, Broadcast.__table__, plan.broadcasts, "broadcasts", started)
    # Messages in several transactions: one huge one makes SQLite's WAL file huge.
    rows = message_rows(plan, rng)
    while True:
        with engine.begin() as conn:
            batch = [row for _, row in zip(range(50_000), rows, strict=False)]
            if not batch:
                break
            insert(conn, Message.__table__, batch, f"messages {batch[0]['id']:,}-", started)
    with engine.begin() as conn:
        insert(conn, ProgressReport.__table__, plan.reports, "progress reports", started)
        insert(conn, Interest.__table__, plan.interests, "interests", started)
        insert(conn, ConsentEvent.__table__, (
            {"graduate_id": gid, "event": "opt_out", "message_id": said.id, "detail": None,
             "created_at": at} for gid, said, at in plan.consents), "consent events", started)


def reset_sequences(engine) -> None:
    """PostgreSQL: the explicit ids above leave the id sequences at 1; move them past the rows."""
    if engine.dialect.name != "postgresql":
        return
    from sqlalchemy import text

    with engine.begin() as conn:
        for table in ("institutions", "cohorts", "graduates", "checkin_rounds", "job_openings",
                      "broadcasts", "messages", "progress_reports", "interests",
                      "consent_events"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"(SELECT coalesce(max(id), 1) FROM {table}))"))


def build(url: str, graduates: int, messages: int, seed: int, analyze: bool) -> dict:
    from sqlalchemy import text

    from bot import summaries
    from bot.db import Database
    from bot.migrate import upgrade
    from bot.models import utcnow
    from bot.staffusers import add_staff

    started = time.perf_counter()
    print(f"building: {graduates:,} graduates, {messages:,} messages", flush=True)
    upgrade(url)
    print(f"  schema: alembic upgrade head ({time.perf_counter() - started:.1f}s)", flush=True)
    now = utcnow().replace(microsecond=0)
    plan = Planner(graduates, messages, seed, now).build()
    print(f"  planned in memory ({time.perf_counter() - started:.1f}s): "
          f"{len(plan.institutions)} institutions, {len(plan.cohorts)} cohorts, "
          f"{len(plan.graduates):,} graduates, {len(plan.rounds):,} rounds, "
          f"{len(plan.reports):,} reports, {len(plan.jobs)} job openings, "
          f"{len(plan.messages):,} messages", flush=True)
    db = Database(url)
    try:
        write(db.engine, plan, started)
        reset_sequences(db.engine)
        # Core inserts bypass the ORM flush that keeps the stored summaries current; compute
        # them once, as the migration that added them does for an existing database.
        t0 = time.perf_counter()
        with db.engine.begin() as conn:
            summaries.rebuild(conn)
        print(f"  summaries (bot.summaries.rebuild): {time.perf_counter() - t0:.1f}s",
              flush=True)
        big = plan.cohorts[0]
        with db.session() as session:
            add_staff(session, name=ADMIN, role="admin", password=PASSWORD, actor="benchmark")
            add_staff(session, name=VIEWER, role="viewer", password=PASSWORD,
                      institution=plan.institutions[big.institution_id - 1]["name"],
                      actor="benchmark")
        if analyze or db.engine.dialect.name == "postgresql":
            t0 = time.perf_counter()
            with db.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
            print(f"  ANALYZE: {time.perf_counter() - t0:.1f}s", flush=True)
    finally:
        db.dispose()
    took = time.perf_counter() - started
    print(f"built in {took:.1f}s", flush=True)
    return {"seconds": took, "plan": plan}


# --------------------------------------------------------------------------------------------
# Measuring.


class SqlLog:
    """Every statement the engine runs while ``active``: (seconds, SQL, parameters)."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        self.active = False
        self.statements: list[tuple[float, str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        took = time.perf_counter() - conn.info["bench_started"].pop()
        if self.active and not statement.lstrip().upper().startswith(("BEGIN", "COMMIT")):
            self.statements.append((took, statement, parameters))


@dataclass
class Page:
    name: str
    url: str
    client: str  # "admin" | "viewer"
    named: bool  # one of the pages the issue names (checked against the target)
    times: list[float] = field(default_factory=list)
    sql: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    statements: list[list[tuple[float, str, Any]]] = field(default_factory=list)
    replayed: list[tuple[float, int, str, Any]] = field(default_factory=list)
    size: int = 0


def sign_in(app, name: str):
    client = app.test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    if not token:
        raise RuntimeError("no CSRF token on /staff/login")
    answer = client.post("/staff/login", data={"name": name, "password": PASSWORD,
                                               "csrf_token": token.group(1)})
    if answer.status_code != 302:
        raise RuntimeError(f"sign-in as {name} failed: {answer.status_code}")
    return client


def targets(db, search_hit: str, search_miss: str) -> tuple[list[Page], list[str]]:
    """The pages to measure, with ids looked up in the database; and what they are about."""
    from sqlalchemy import func, select

    from bot.models import Cohort, Graduate, Message, StaffUser

    with db.session() as session:
        big = session.scalar(select(Cohort).where(Cohort.join_code == BIG_JOIN_CODE))
        viewer = session.scalar(select(StaffUser).where(StaffUser.name == VIEWER))
        if big is None or viewer is None:
            raise RuntimeError("this database has no benchmark data (no big cohort or viewer)")
        big_count = session.scalar(select(func.count()).select_from(Message)
                                   .where(Message.cohort_id == big.id))
        # Deep in the history: 90% of the cohort's messages are newer than this one.
        deep = session.scalar(select(Message.id).where(Message.cohort_id == big.id)
                              .order_by(Message.created_at, Message.id)
                              .offset(big_count // 10).limit(1))
        graduate, graduate_count = session.execute(
            select(Message.graduate_id, func.count()).where(Message.cohort_id == big.id)
            .group_by(Message.graduate_id).order_by(func.count().desc()).limit(1)).one()
        # A cohort of ordinary size (the median), for the cohort + direction filter.
        sizes = session.execute(select(Graduate.cohort_id, func.count())
                                .group_by(Graduate.cohort_id).order_by(func.count(),
                                                                       Graduate.cohort_id)).all()
        small = sizes[len(sizes) // 2][0]
        small_count = session.scalar(select(func.count()).select_from(Message)
                                     .where(Message.cohort_id == small,
                                            Message.direction == "in"))
        total = session.scalar(select(func.count()).select_from(Message))
        hits = session.scalar(select(func.count()).select_from(Message)
                              .where(Message.body.ilike(f"%{search_hit}%")))
        misses = session.scalar(select(func.count()).select_from(Message)
                                .where(Message.body.ilike(f"%{search_miss}%")))
    today = datetime.now(ZONE).date()
    month_from = today - timedelta(days=210)
    month_to = month_from + timedelta(days=30)
    with db.session() as session:
        in_month = session.scalar(select(func.count()).select_from(Message).where(
            Message.created_at >= local_at(month_from, 0),
            Message.created_at < local_at(month_to + timedelta(days=1), 0)))
    q = lambda text: text.replace(" ", "+")  # noqa: E731
    pages = [
        Page("dashboard, all institutions", "/staff/dashboard", "admin", True),
        Page("dashboard, viewer (one institution)", "/staff/dashboard", "viewer", True),
        Page("dashboard, big cohort", f"/staff/dashboard?cohort={big.id}", "admin", True),
        Page("timeline, big cohort, newest page", f"/staff/cohorts/{big.id}", "admin", True),
        Page("timeline, big cohort, older page", f"/staff/cohorts/{big.id}?before={deep}",
             "admin", True),
        Page("graduate page", f"/staff/graduates/{graduate}", "admin", False),
        Page(f"reply log, search '{search_hit}'", f"/staff/log?q={q(search_hit)}", "admin",
             True),
        Page(f"reply log, search '{search_miss}'", f"/staff/log?q={q(search_miss)}", "admin",
             True),
        Page("reply log, cohort + inbound", f"/staff/log?cohort_id={small}&direction=in",
             "admin", False),
        Page("reply log, one month", f"/staff/log?from={month_from}&to={month_to}", "admin",
             False),
        # The office's reports (bot/staff/reports.py): not named, measured for the record.
        Page("outcome export page, all", "/staff/outcomes", "admin", False),
        Page("outcome XLSX, big cohort", f"/staff/outcomes/export.xlsx?cohort_id={big.id}",
             "admin", False),
        Page("outcome CSV, one month", "/staff/outcomes/export.csv?from="
             f"{month_from:%d/%m/%Y}&to={month_to:%d/%m/%Y}", "admin", False),
        Page("tracer report, all cohorts", "/staff/tracer", "admin", False),
        Page("tracer report, viewer", "/staff/tracer", "viewer", False),
        Page("tracer XLSX, all cohorts", "/staff/tracer/export.xlsx", "admin", False),
    ]
    about = [
        f"big cohort {big.id} '{big.name}': {big_count:,} messages; older page before message "
        f"{deep} (90% of the cohort's messages are newer)",
        f"graduate {graduate}: {graduate_count} messages; cohort {small} (median size): "
        f"{small_count} inbound messages",
        f"search '{search_hit}' matches {hits:,} of {total:,} messages, '{search_miss}' "
        f"{misses}; {month_from} to {month_to}: {in_month:,} messages",
    ]
    return pages, about


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(app, db, pages: list[Page], repeat: int, warmup: int) -> None:
    log = SqlLog(db.engine)
    clients = {"admin": sign_in(app, ADMIN), "viewer": sign_in(app, VIEWER)}
    for page in pages:
        for _ in range(warmup):
            answer = clients[page.client].get(page.url)
            body = answer.get_data()
            if answer.status_code != 200:
                raise PageError(f"{page.name}: GET {page.url} answered {answer.status_code}")
            page.size = len(body)
    for _ in range(repeat):
        for page in pages:
            client = clients[page.client]
            log.statements = []
            log.active = True
            started = time.perf_counter()
            answer = client.get(page.url)
            answer.get_data()
            took = time.perf_counter() - started
            log.active = False
            if answer.status_code != 200:
                raise PageError(f"{page.name}: GET {page.url} answered {answer.status_code}")
            page.times.append(took)
            page.sql.append(sum(s[0] for s in log.statements))
            page.counts.append(len(log.statements))
            page.statements.append(log.statements)


class PageError(RuntimeError):
    pass


def replay(db, page: Page, times: int = 5) -> None:
    """Run each SELECT of the page's last request again, ``times`` times, fetching every row.

    In a request SQLite's time is only until the first row (the rest is fetched later, inside
    SQLAlchemy's time), so the database's share is measured apart, statement by statement:
    ``page.replayed`` holds (median seconds, position, SQL, parameters) per statement.
    """
    page.replayed = []
    with db.engine.connect() as conn:
        for position, (_took, sql, params) in enumerate(page.statements[-1]):
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            runs = []
            for _ in range(times):
                started = time.perf_counter()
                conn.exec_driver_sql(sql, params).fetchall()
                runs.append(time.perf_counter() - started)
            page.replayed.append((statistics.median(runs), position, sql, params))
        conn.rollback()


def explain(db, statement: str, parameters: Any) -> str:
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "postgresql":
            rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            return "\n".join(r[0] for r in rows)
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        return "\n".join(f"{r[0]:>3} {r[1]:>3}  {r[3]}" for r in rows)


def one_line(sql: str, width: int = 150) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= width else sql[:width - 1] + "…"


# --------------------------------------------------------------------------------------------


def machine_line(engine) -> str:
    from importlib.metadata import version

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            database = "PostgreSQL " + conn.exec_driver_sql("SHOW server_version").scalar()
        else:
            import sqlite3

            database = f"SQLite {sqlite3.sqlite_version}"
    versions = ", ".join(f"{d} {version(d)}" for d in ("Flask", "SQLAlchemy", "Jinja2"))
    return (f"{os.cpu_count()} CPUs ({cpu or platform.processor()}), {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, {versions}, {database}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graduates", type=int, default=20_000, help="graduates (20000)")
    parser.add_argument("--messages", type=int, default=200_000, help="messages (200000)")
    parser.add_argument("--repeat", type=int, default=30, help="measured requests per page (30)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up requests per page (3)")
    parser.add_argument("--database-url", help="an empty database to fill (default: SQLite in a "
                        "temporary folder), e.g. postgresql+psycopg://postgres@127.0.0.1:5432/x")
    parser.add_argument("--reuse", action="store_true",
                        help="measure a database this script filled before (no build)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary SQLite folder (for --reuse or EXPLAIN)")
    parser.add_argument("--analyze", action="store_true",
                        help="run ANALYZE on SQLite too (PostgreSQL always gets it)")
    parser.add_argument("--explain", action="store_true",
                        help="print the query plan of each page's slowest statement")
    parser.add_argument("--target-ms", type=float, default=150.0,
                        help="median a named page must stay under (150)")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="measure only pages whose name contains TEXT (repeatable), "
                             "e.g. --only tracer --only outcome")
    parser.add_argument("--seed", type=int, default=20240614)
    parser.add_argument("--search-hit", default="mesin jahit",
                        help="reply-log search that matches some messages ('mesin jahit')")
    parser.add_argument("--search-miss", default="kapal selam",
                        help="reply-log search that matches none ('kapal selam')")
    args = parser.parse_args(argv)
    if args.graduates < 100 or args.messages < args.graduates:
        parser.error("need at least 100 graduates and as many messages as graduates")

    folder = None
    url = args.database_url
    if url is None:
        if args.reuse:
            parser.error("--reuse needs --database-url")
        folder = Path(tempfile.mkdtemp(prefix="kabar-pages-"))
        url = f"sqlite:///{folder / 'kabar.db'}"
    try:
        return run(args, url)
    except PageError as exc:
        print(f"ERROR: {exc}")
        return 1
    finally:
        if folder is not None:
            if args.keep:
                print(f"kept {folder} (--database-url sqlite:///{folder / 'kabar.db'} --reuse)")
            else:
                shutil.rmtree(folder, ignore_errors=True)


def run(args, url: str) -> int:
    from sqlalchemy import inspect

    from bot import create_app
    from bot.config import Settings
    from bot.db import Database

    probe = Database(url)
    try:
        filled = "messages" in inspect(probe.engine).get_table_names()
    finally:
        probe.dispose()
    built = None
    if args.reuse:
        if not filled:
            print("ERROR: --reuse, but the database has no tables")
            return 1
    else:
        if filled:
            print("ERROR: the database is not empty; give an empty one (or --reuse one this "
                  "script filled)")
            return 1
        built = build(url, args.graduates, args.messages, args.seed, args.analyze)

    settings = Settings().with_overrides(app={"secret_key": "bench-" + "x" * 32},
                                         database={"url": url})
    db = Database(url)
    try:
        app = create_app(settings, db)
        pages, about = targets(db, args.search_hit, args.search_miss)
        if args.only:
            pages = [p for p in pages if any(text in p.name for text in args.only)]
            if not pages:
                print(f"ERROR: no page name contains {' or '.join(args.only)}")
                return 1
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"\nmeasuring: {len(pages)} pages, {args.warmup} warm-up + {args.repeat} timed "
              f"requests each, round-robin; load average {load:.2f}", flush=True)
        started = time.perf_counter()
        measure(app, db, pages, args.repeat, args.warmup)
        print(f"measured in {time.perf_counter() - started:.1f}s; load average "
              f"{os.getloadavg()[0]:.2f}")
        return report(args, db, url, pages, about, built)
    finally:
        db.dispose()


def report(args, db, url: str, pages: list[Page], about: list[str], built: dict | None) -> int:
    from sqlalchemy import func, select

    from bot.models import Graduate, Message, ProgressReport

    backend = db.engine.dialect.name
    with db.session() as session:
        graduates, messages, reports = (
            session.scalar(select(func.count()).select_from(model))
            for model in (Graduate, Message, ProgressReport))
    print(f"\nKabar console pages: {graduates:,} graduates, {messages:,} messages, "
          f"{reports:,} progress reports, {backend}"
          + (" (ANALYZE)" if backend == "postgresql" or args.analyze else " (no ANALYZE)")
          + f", Flask test client in process, {args.repeat} requests per page after "
          f"{args.warmup} warm-up")
    print("machine: " + machine_line(db.engine))
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    if built:
        print(f"build: {built['seconds']:.1f}s")
    for line in about:
        print(line)
    for p in pages:
        replay(db, p)
    header = (f"\n{'page':40s} {'median':>8s} {'p90':>8s} {'max':>8s} {'SQL':>7s} "
              f"{'queries':>7s} {'KiB':>5s}  target")
    print(header)
    print("-" * (len(header) - 1))
    failed = []
    for p in pages:
        median = statistics.median(p.times) * 1000
        counts = sorted(set(p.counts))
        count = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        verdict = "PASS" if median < args.target_ms else "FAIL"
        if not p.named:
            verdict = f"({'under' if median < args.target_ms else 'over'}; not named)"
        elif verdict == "FAIL":
            failed.append(p.name)
        print(f"{p.name:40s} {median:8.1f} {percentile(p.times, 0.9) * 1000:8.1f} "
              f"{max(p.times) * 1000:8.1f} {sum(r[0] for r in p.replayed) * 1000:7.1f} "
              f"{count:>7s} {p.size / 1024:5.0f}  {verdict}")
    print("(milliseconds; median, p90, max: the whole request; SQL: its SELECTs run again on "
          "their own,\n every row fetched, median of 5; queries: statements per request)")
    print("\nslowest statements per page (median ms when run again; #: position in the request):")
    for p in pages:
        top = sorted(p.replayed, reverse=True)[:2]
        print(f"  {p.name}:")
        for took, position, sql, _params in top:
            print(f"    {took * 1000:6.1f} ms #{position + 1}: {one_line(sql, 130)}")
        if args.explain and top:
            _took, _position, sql, params = top[0]
            plan = explain(db, sql, params)
            print("      params: " + one_line(repr(params), 200))
            print("      " + plan.replace("\n", "\n      "))
    if failed:
        print(f"\nFAIL: median over {args.target_ms:.0f} ms: {', '.join(failed)}")
        return 2
    print(f"\nPASS: every named page under {args.target_ms:.0f} ms at the median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
