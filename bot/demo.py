"""``kabar demo``: the whole of Kabar in one process, with sample data shaped like the seed story.

Dinperinaker Kota Pekalongan trained 160 people with two LPKS (A'nur and Nisfisano) in 8 paket
of 20; most in sewing, because the shoe factories of the Batang industrial park (KITB) need
sewing operators. The demo builds that: SQLite in ``data_dir``, the simulator transport, quiet
hours off, the web app, the scheduler and the dispatcher in one process, a finished check-in
round for two cohorts (so dashboards and exports have data) and a fresh round for Menjahit 1
(so the simulator has prompts waiting). The staff login is printed at start.
"""

from __future__ import annotations

import logging
import random
import secrets
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot import catalog, joincodes
from bot.broadcasts import CODE_ALPHABET, job_message
from bot.config import TEMPLATE_KINDS, Settings
from bot.db import Database
from bot.models import (
    INBOUND,
    MSG_DELIVERED,
    MSG_HANDLED,
    MSG_READ,
    MSG_SENT,
    OUTBOUND,
    REPORT_COMPLETED,
    REPORT_OPEN,
    REPORT_UNANSWERED,
    Broadcast,
    CheckInRound,
    Cohort,
    Graduate,
    Institution,
    Interest,
    JobOpening,
    Message,
    ProgressReport,
    utcnow,
)

log = logging.getLogger(__name__)

DB_FILENAME = "kabar-demo.db"
SEED = 20240614  # the closing ceremony, Jumat 14 Juni 2024
ADMIN = "admin"

INSTITUTIONS = {
    "LPKS A'nur": [("Menjahit 1", "menjahit"), ("Menjahit 2", "menjahit"),
                   ("Menjahit 3", "menjahit"), ("Menjahit 4", "menjahit")],
    "LPKS Nisfisano": [("Menjahit 5", "menjahit"), ("Menjahit 6", "menjahit"),
                       ("Bordir 1", "bordir"), ("Tata Boga 1", "tata boga")],
}
GRADUATES_PER_COHORT = 20
FINISHED_ROUND_COHORTS = ("Menjahit 1", "Bordir 1")
FRESH_ROUND_COHORT = "Menjahit 1"
# Stand-ins for approved templates: outside a graduate's 24-hour window business-initiated
# messages go out only as templates (bot.transports.request_for), in the demo too; the
# simulator shows the text they carry.
DEMO_TEMPLATES = {kind: f"HXdemo_{kind}"
                  for kind in TEMPLATE_KINDS}

FIRST_NAMES = (
    "Siti", "Dewi", "Nur", "Sri", "Rina", "Ayu", "Fitri", "Wulan", "Eka", "Putri", "Indah",
    "Laila", "Nabila", "Umi", "Tri", "Yuni", "Ratna", "Anisa", "Dian", "Mega", "Ahmad", "Budi",
    "Agus", "Rizki", "Fajar", "Dimas", "Yusuf", "Hendra", "Khoirul", "Bayu",
)
LAST_NAMES = (
    "Rahmawati", "Setiawan", "Hidayat", "Lestari", "Susanti", "Pratama", "Wahyuni", "Maulana",
    "Nugroho", "Handayani", "Kurniawan", "Safitri", "Saputra", "Fauziah", "Ramadhan",
    "Anggraini", "Santoso", "Utami", "Firmansyah", "Rohmah", "Mahmudah", "Prasetyo",
)
FIRST_PHONE = 6281200010000  # +62 812-0001-0000 onwards: valid Telkomsel-style numbers

JOBS = (
    # title, employer, location, skill, days until the deadline (None: until filled)
    ("Operator jahit sepatu", "Pabrik sepatu di KITB (Kawasan Industri Terpadu Batang)",
     "Batang", "menjahit", 30),
    ("Penjahit garmen", "Konveksi Batik Pesindon", "Kota Pekalongan", "menjahit", 21),
    ("Tukang bordir", "Butik Bordir Kedungwuni", "Kab. Pekalongan", "bordir", 14),
    ("Juru masak katering", "Katering Sari Rasa", "Kota Pekalongan", "tata boga", None),
)
EMPLOYERS = ("pabrik sepatu di KITB Batang", "konveksi Bu Siti, Pekalongan",
             "garmen PT Pekalongan Jaya", "butik batik Kauman", "penjahit Pasar Banjarsari",
             "katering Sari Rasa")
BUSINESSES = ("jahit baju di rumah", "jualan online baju batik", "permak jeans dan vermak",
              "terima jahitan seragam sekolah", "bordir kerudung pesanan", "jualan kue kering")
HELP_NOTES = ("butuh mesin jahit sendiri", "modal untuk beli kain", "info lowongan di Batang",
              "pelatihan lanjutan membuat pola", "belum punya ongkos ke pabrik")
# How a graduate might type the choice, per status: digits, words, slang.
STATUS_REPLIES = {
    "employed": ("1", "1.", "satu", "sudah kerja", "udh kerja kak"),
    "self_employed": ("2", "dua", "usaha sendiri", "jualan online"),
    "seeking": ("3", "3️⃣", "blm dpt kerja", "belum kerja masih nyari"),
    "studying": ("4", "lanjut kursus", "lanjut sekolah"),
}
YES_REPLIES = ("ya", "iya", "y", "betul", "ok")
NO_REPLIES = ("tidak", "gak", "nggak", "belum")


# --- sample data ----------------------------------------------------------------------------

def seed_sample_data(session: Session, settings: Settings, rng: random.Random,
                     today: date | None = None) -> dict[str, int]:
    """Add the sample institutions, cohorts, graduates, jobs and a finished round; the counts.

    The same ``rng`` seed gives the same people and numbers. Dates are relative to ``today``
    (default: today in the app's time zone), so the demo always looks recent.
    """
    today = today or utcnow().astimezone(settings.tz).date()
    training_end = today - timedelta(days=60)
    training_start = training_end - timedelta(days=19)
    names = _names(rng, GRADUATES_PER_COHORT * sum(len(c) for c in INSTITUTIONS.values()))
    cohorts: dict[str, Cohort] = {}
    graduates: dict[str, list[Graduate]] = {}
    index = 0
    for inst_name, paket in INSTITUTIONS.items():
        institution = Institution(name=inst_name)
        session.add(institution)
        session.flush()
        for cohort_name, skill in paket:
            cohort = Cohort(institution_id=institution.id, name=cohort_name, skill=skill,
                            join_code="".join(rng.choice(joincodes.ALPHABET)
                                              for _ in range(joincodes.LENGTH)),
                            timezone=settings.app.timezone, training_start=training_start,
                            training_end=training_end)
            session.add(cohort)
            session.flush()
            cohorts[cohort_name] = cohort
            members = []
            for _ in range(GRADUATES_PER_COHORT):
                members.append(Graduate(cohort_id=cohort.id, name=names[index],
                                        phone=f"+{FIRST_PHONE + index}", skill=skill,
                                        language="id"))
                index += 1
            session.add_all(members)
            graduates[cohort_name] = members
    session.flush()
    # Two graduates asked to stop: the staff console shows them, no round reaches them.
    for cohort_name in ("Menjahit 1", "Tata Boga 1"):
        quitter = graduates[cohort_name][-1]
        quitter.opted_out = True
        quitter.opted_out_at = _at(training_end + timedelta(days=3), 19, 12, settings)
    round_day = today - timedelta(days=20)
    reports = 0
    for cohort_name in FINISHED_ROUND_COHORTS:
        reports += _finished_round(session, settings, rng, cohorts[cohort_name],
                                   graduates[cohort_name], round_day)
    jobs = _jobs(session, rng, today)
    _job_sent(session, settings, rng, jobs[0], [cohorts["Menjahit 1"], cohorts["Menjahit 5"]],
              graduates, today - timedelta(days=3))
    return {"institutions": len(INSTITUTIONS), "cohorts": len(cohorts), "graduates": index,
            "reports": reports, "jobs": len(jobs)}


def _names(rng: random.Random, count: int) -> list[str]:
    pairs = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
    return rng.sample(pairs, count)


def _at(day: date, hour: int, minute: int, settings: Settings) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=settings.tz)


def _jobs(session: Session, rng: random.Random, today: date) -> list[JobOpening]:
    made = []
    for title, employer, location, skill, days in JOBS:
        code = "".join(rng.choice(CODE_ALPHABET) for _ in range(5))
        job = JobOpening(code=code, title=title, employer=employer, location=location,
                         skill=skill, created_by=ADMIN,
                         deadline=today + timedelta(days=days) if days is not None else None)
        session.add(job)
        made.append(job)
    session.flush()
    return made


def _job_sent(session: Session, settings: Settings, rng: random.Random, job: JobOpening,
              cohorts: list[Cohort], graduates: dict[str, list[Graduate]], day: date) -> None:
    """The KITB opening as staff sent it to two sewing cohorts a few days ago: delivered to
    most, read by many, and five graduates answered MINAT (the job page's shortlist)."""
    sent_at = _at(day, 10, 0, settings)
    recipients = [(cohort, g) for cohort in cohorts for g in graduates[cohort.name]
                  if not g.opted_out]
    broadcast = Broadcast(
        kind="job_opening", job_id=job.id, body=job_message("id", job), created_by=ADMIN,
        recipient_count=len(recipients), created_at=sent_at,
        target={"cohort_ids": [c.id for c in cohorts], "cohorts": [c.name for c in cohorts],
                "skill": None, "statuses": []})
    session.add(broadcast)
    session.flush()
    chats = {cohort.id: _Chat(session, cohort, prefix="job") for cohort in cohorts}
    for cohort, graduate in recipients:
        status = rng.choices((MSG_READ, MSG_DELIVERED, MSG_SENT), weights=(60, 32, 8))[0]
        chats[cohort.id].out(graduate, "job_opening", job_message(graduate.language, job),
                             sent_at, broadcast_id=broadcast.id,
                             dedupe_key=f"broadcast:{broadcast.id}:{graduate.id}",
                             status=status)
    interested = graduates[cohorts[0].name][:3] + graduates[cohorts[1].name][:2]
    for minutes, graduate in enumerate(interested):
        said = sent_at + timedelta(hours=2, minutes=7 * minutes)
        chat = chats[graduate.cohort_id]
        chat.inbound(graduate, f"minat {job.code.lower()}", said)
        chat.out(graduate, "reply", catalog.text("id", "interest.recorded", title=job.title,
                                                 employer=job.employer, code=job.code),
                 said + timedelta(seconds=4))
        session.add(Interest(job_id=job.id, graduate_id=graduate.id, created_at=said))
    session.flush()


def _finished_round(session: Session, settings: Settings, rng: random.Random, cohort: Cohort,
                    members: list[Graduate], day: date) -> int:
    """A past round with varied answers, and the chat it took, as the webhook would record it."""
    sent_at = _at(day, 9, 0, settings)
    round_ = CheckInRound(cohort_id=cohort.id, scheduled_for=sent_at, trigger="schedule",
                          created_at=sent_at)
    session.add(round_)
    session.flush()
    chat = _Chat(session, cohort)
    reports = 0
    for graduate in members:
        if graduate.opted_out:
            continue
        reports += 1
        chat.out(graduate, "checkin", catalog.text("id", "checkin.prompt", name=graduate.name,
                                                    cohort=cohort.name), sent_at,
                 dedupe_key=f"checkin:{round_.id}:{graduate.id}", round_id=round_.id)
        report = ProgressReport(round_id=round_.id, graduate_id=graduate.id, raw_answers={},
                                created_at=sent_at)
        session.add(report)
        if rng.random() < 0.15:  # no answer: reminded, then expired
            report.status = REPORT_UNANSWERED
            report.reminded_at = sent_at + timedelta(hours=48)
            report.closed_at = sent_at + timedelta(days=7)
            continue
        when = sent_at + timedelta(minutes=rng.randint(5, 600))
        report.responded_at = when
        for key, reply, question in _answers(rng, report):
            report.raw_answers.setdefault(key, []).append(reply)
            chat.inbound(graduate, reply, when)
            when += timedelta(seconds=rng.randint(20, 180))
            chat.out(graduate, "reply", catalog.text("id", question, name=graduate.name,
                                                      cohort=cohort.name), when)
        report.status = REPORT_COMPLETED
        report.completed_at = report.closed_at = when
    session.flush()
    return reports


def _answers(rng: random.Random, report: ProgressReport) -> Iterator[tuple[str, str, str]]:
    """Fill ``report`` with plausible values; yield (raw key, raw reply, next question)."""
    status = rng.choices(list(STATUS_REPLIES), weights=(40, 20, 30, 10))[0]
    report.employment_status = status
    if status == "employed":
        report.employer = rng.choice(EMPLOYERS)
        report.uses_training_skill = rng.random() < 0.8
        yield "status", rng.choice(STATUS_REPLIES[status]), "checkin.ask_employer"
        yield "employer", report.employer, "checkin.ask_uses_skill"
        yes_no = YES_REPLIES if report.uses_training_skill else NO_REPLIES
        yield "uses_skill", rng.choice(yes_no), "checkin.ask_rating"
    elif status == "self_employed":
        report.employer = rng.choice(BUSINESSES)
        yield "status", rng.choice(STATUS_REPLIES[status]), "checkin.ask_business"
        yield "business", report.employer, "checkin.ask_rating"
    elif status == "seeking":
        report.wants_job_alerts = rng.random() < 0.85
        yield "status", rng.choice(STATUS_REPLIES[status]), "checkin.ask_job_alerts"
        yes_no = YES_REPLIES if report.wants_job_alerts else NO_REPLIES
        yield "job_alerts", rng.choice(yes_no), "checkin.ask_rating"
    else:
        yield "status", rng.choice(STATUS_REPLIES[status]), "checkin.ask_rating"
    report.skill_rating = rng.choices((2, 3, 4, 5), weights=(10, 35, 40, 15))[0]
    yield "rating", str(report.skill_rating), "checkin.ask_help"
    report.needs_help = rng.choice(HELP_NOTES) if rng.random() < 0.35 else None
    yield "help", report.needs_help or rng.choice(("tidak ada", "tdk ada kak", "aman")), \
        "checkin.thanks"


class _Chat:
    """Writes the messages of a past conversation, already delivered and read."""

    def __init__(self, session: Session, cohort: Cohort, prefix: str = "demo") -> None:
        self.session = session
        self.cohort = cohort
        self.prefix = prefix  # keeps SIDs of different chats of one cohort apart
        self.count = 0

    def _sid(self) -> str:
        """A made-up, unique Twilio-style SID (SM + 32 characters)."""
        self.count += 1
        return f"SM{self.prefix:<4.4}{self.cohort.id:04d}{self.count:024d}"

    def out(self, graduate: Graduate, kind: str, body: str, at: datetime,
            status: str = MSG_READ, **extra: Any) -> None:
        self.session.add(Message(
            direction=OUTBOUND, graduate_id=graduate.id, cohort_id=self.cohort.id,
            phone=graduate.phone, kind=kind, body=body, status=status, attempts=1,
            twilio_sid=self._sid(), created_at=at, sent_at=at,
            updated_at=at, next_attempt_at=at, **extra))

    def inbound(self, graduate: Graduate, body: str, at: datetime) -> None:
        self.session.add(Message(
            direction=INBOUND, graduate_id=graduate.id, cohort_id=self.cohort.id,
            phone=graduate.phone, kind="inbound", body=body, status=MSG_HANDLED,
            twilio_sid=self._sid(), created_at=at, updated_at=at))
        graduate.last_inbound_at = at


# --- setting up and running -----------------------------------------------------------------

@dataclass
class DemoSetup:
    settings: Settings
    db: Database
    admin_password: str
    seeded: bool
    fresh_round: str | None  # "Menjahit 1: 19 prompts queued", or None if one was open


def demo_settings(data_dir: Path, host: str, port: int) -> Settings:
    """Built-in defaults with the demo's database, the simulator, stand-in templates and no
    quiet hours."""
    return Settings().with_overrides(
        app={"secret_key": secrets.token_hex(32), "public_url": f"http://{_url_host(host)}:{port}"},
        database={"url": f"sqlite:///{(data_dir / DB_FILENAME).resolve()}"},
        transport={"kind": "simulator"},
        twilio={"templates": DEMO_TEMPLATES},
        scheduler={"quiet_hours": ""},
    )


def prepare_demo(data_dir: Path, fresh: bool, host: str = "127.0.0.1",
                 port: int = 5000) -> DemoSetup:
    """Create or reuse the demo database, seed it when empty, reset the admin password."""
    from bot.checkins import open_round
    from bot.migrate import upgrade
    from bot.staffusers import add_staff

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            (data_dir / f"{DB_FILENAME}{suffix}").unlink(missing_ok=True)
    settings = demo_settings(data_dir, host, port)
    upgrade(settings.database.url)
    db = Database(settings.database.url)
    password = secrets.token_urlsafe(12)
    with db.session() as session:
        seeded = not session.scalar(select(func.count()).select_from(Institution))
        if seeded:
            counts = seed_sample_data(session, settings, random.Random(SEED))
            log.info("demo data: %(institutions)d LPKS, %(cohorts)d paket, "
                     "%(graduates)d graduates", counts)
        add_staff(session, name=ADMIN, role="admin", password=password, actor="demo")
    fresh_round = None
    with db.session() as session:
        cohort = session.scalar(select(Cohort).where(Cohort.name == FRESH_ROUND_COHORT))
        if cohort is not None and not _has_open_reports(session, cohort):
            now = utcnow()
            started = open_round(session, settings, cohort, now.replace(second=0, microsecond=0),
                                 trigger="manual", ignore_quiet_hours=True, now=now)
            fresh_round = started.describe() if started else None
    return DemoSetup(settings=settings, db=db, admin_password=password, seeded=seeded,
                     fresh_round=fresh_round)


def _has_open_reports(session: Session, cohort: Cohort) -> bool:
    return session.scalar(
        select(func.count()).select_from(ProgressReport)
        .join(CheckInRound, ProgressReport.round_id == CheckInRound.id)
        .where(CheckInRound.cohort_id == cohort.id, ProgressReport.status == REPORT_OPEN)) > 0


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def run_demo(host: str, port: int, data_dir: Path, fresh: bool) -> None:
    """Seed if needed, then serve the web app with the scheduler and dispatcher until Ctrl-C."""
    from werkzeug.serving import make_server

    from bot import create_app
    from bot.dispatcher import Dispatcher
    from scheduler import jobs
    from scheduler.service import start_background

    for noisy in ("werkzeug", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    setup = prepare_demo(Path(data_dir), fresh, host, port)
    settings, db = setup.settings, setup.db
    app = create_app(settings, db, demo=True)
    server = make_server(host, port, app, threaded=True)  # fails here if the port is taken
    stop = threading.Event()
    dispatcher = threading.Thread(target=Dispatcher(settings, db).run_forever, args=(stop,),
                                  name="dispatcher", daemon=True)
    scheduler = None
    previous = None
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C stops the demo even when it was started from a shell that ignores SIGINT
        # for background commands (Python then leaves SIGINT ignored); SIGTERM does too.
        previous = (signal.signal(signal.SIGTERM, _interrupt),
                    signal.signal(signal.SIGINT, signal.default_int_handler))
    try:
        dispatcher.start()
        scheduler = start_background(settings, db)
        _print_banner(setup, host, port, Path(data_dir))
        server.serve_forever()  # returns on Ctrl-C (KeyboardInterrupt)
    finally:
        print("\nstopping Kabar demo …", flush=True)
        server.server_close()
        stop.set()
        dispatcher.join(timeout=30)
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        jobs.reset()
        db.dispose()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])
        print("stopped.", flush=True)


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _print_banner(setup: DemoSetup, host: str, port: int, data_dir: Path) -> None:
    base = f"http://{_url_host(host)}:{port}"
    lines = [
        "",
        "Kabar demo is running (simulator transport: nothing leaves this computer).",
        f"  WhatsApp simulator: {base}/simulator",
        f"  staff console:      {base}/staff",
        f"  staff login:        {ADMIN} / {setup.admin_password}",
        f"  data:               {(data_dir / DB_FILENAME).resolve()}"
        + (" (new sample data)" if setup.seeded else " (kept; --fresh starts over)"),
    ]
    if setup.fresh_round:
        lines.append(f"  check-in started:   {setup.fresh_round}")
    lines += ["Press Ctrl-C to stop.", ""]
    print("\n".join(lines), flush=True)
