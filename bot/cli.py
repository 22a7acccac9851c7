"""The ``kabar`` command line. Each command is thin: it loads settings and calls one module."""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path

import click

from bot.config import ConfigError, Settings, load_settings
from bot.db import Database


class Context:
    """Settings and database, loaded on first use so ``--help`` works without a config."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._settings: Settings | None = None
        self._db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_path)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._settings

    @property
    def db(self) -> Database:
        if self._db is None:
            database = self.settings.database
            self._db = Database(database.url, read_url=database.read_url,
                                max_lag_seconds=database.replica_max_lag_seconds,
                                watch_replica=False)
        return self._db


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="KABAR_CONFIG", type=click.Path(dir_okay=False),
              help="Configuration file (TOML). Default: $KABAR_CONFIG, ./config.toml, built-ins.")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail.")
@click.pass_context
def main(click_ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Kabar: WhatsApp follow-up for job-training graduates."""
    from bot.privacy import install_log_masking

    install_log_masking()  # no phone numbers or query strings in any log line
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        # Alembic announces every plugin and step at INFO; the command prints its own result.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # The twilio SDK logs every request and its headers at INFO.
        logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    click_ctx.obj = Context(config_path)


# --- database -------------------------------------------------------------------------------

@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_ctx
def db_upgrade(ctx: Context, revision: str) -> None:
    """Create or migrate the database to the latest schema (Alembic)."""
    from bot.migrate import upgrade

    upgrade(ctx.settings.database.url, revision)
    click.echo(f"database at {_safe_url(ctx.settings.database.url)} is at revision {revision}")


@db.command("summaries")
@click.option("--check", is_flag=True,
              help="Only report stale summaries; exit 1 when there are any.")
@pass_ctx
def db_summaries(ctx: Context, check: bool) -> None:
    """Check the dashboard's stored summaries against the reports, and rebuild them.

    Kabar keeps them current itself; this is for after rows were changed by hand in SQL.
    """
    from bot import summaries

    _ensure_schema(ctx)
    with ctx.db.engine.begin() as conn:
        found = summaries.stale(conn)
        click.echo(f"stale: {len(found['graduates'])} graduates, {len(found['rounds'])} rounds")
        if check:
            if found["graduates"] or found["rounds"]:
                sys.exit(1)
            return
        summaries.rebuild(conn)
    click.echo("summaries rebuilt from the progress reports")


# --- roster and staff -----------------------------------------------------------------------

@main.command("import-roster")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--actor", default="cli", help="Name written to the audit log.")
@click.option("--dry-run", is_flag=True,
              help="Only show what the import would create, rename, move and change.")
@click.option("--allow-erased", is_flag=True,
              help="Also import numbers of graduates erased on request (they asked to return).")
@pass_ctx
def import_roster_cmd(ctx: Context, file: Path, actor: str, dry_run: bool,
                      allow_erased: bool) -> None:
    """Import graduates from a CSV or XLSX roster (Indonesian or English headers).

    Prints what changes: new institutions and cohorts, new graduates, renames and moves to
    another cohort (each audited old -> new). Graduates missing from the file stay as they are.
    While it writes, a terminal shows the rows done and the rate on standard error; a last
    line there always says how long reading and writing took.
    """
    import time

    from bot.roster import RosterError
    from bot.roster_plan import apply_plan, plan_roster
    from bot.rosterfile import ReadLimits

    _ensure_schema(ctx)
    started = time.monotonic()
    if sys.stderr.isatty():
        click.echo(f"{file.name}: reading and comparing with the database …", err=True)
    try:
        # Reading the file and comparing it holds no writer lock (a read session); the
        # changes then go in short transactions (``chunked``), so the bot keeps answering.
        with ctx.db.read_session() as session:
            plan = plan_roster(session, file, limits=ReadLimits.from_settings(ctx.settings),
                               allow_erased=allow_erased)
        planned = time.monotonic()
        if not dry_run:
            with _ImportProgress(len(plan.rows)) as meter, ctx.db.session() as session:
                report = apply_plan(session, plan, actor=actor, chunked=True,
                                    progress=meter.update)
    except RosterError as exc:
        raise click.ClickException(str(exc)) from None
    for problem in plan.rejected:
        click.echo(f"{file.name}: {problem}", err=True)
    for line in plan.summary_lines():
        click.echo(line)
    if len(plan.rejected) < plan.rejected_total:
        click.echo(f"{file.name}: … and {plan.rejected_total - len(plan.rejected)} more "
                   "rejected rows not listed; fix these and import again", err=True)
    rows = len(plan.rows)
    timing = (f"{rows:,} rows read in {plan.seconds['read']:.1f} s, compared in "
              f"{planned - started - plan.seconds['read']:.1f} s")
    if dry_run:
        click.echo(f"{file.name} (dry run, nothing changed): {plan.counts()}")
    else:
        click.echo(report.summary())
        written = time.monotonic() - planned
        timing += f", written in {written:.1f} s ({rows / max(written, 1e-6):,.0f} rows/s)"
    click.echo(f"{file.name}: {timing}", err=True)


class _ImportProgress:
    """Rows written of all and the rate, on standard error, only when it is a terminal."""

    def __init__(self, total: int) -> None:
        import time

        self.clock = time.monotonic
        self.total = total
        self.started = self.clock()
        self.bar = None
        self.done = 0
        stream = sys.stderr
        if stream.isatty() and total:
            self.bar = click.progressbar(length=total, label="writing", file=stream,
                                         show_pos=True, show_percent=True, show_eta=True,
                                         item_show_func=lambda rate: rate)

    def __enter__(self) -> _ImportProgress:
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            return
        rate = done / max(self.clock() - self.started, 1e-6)
        self.bar.update(done - self.done, f"{rate:,.0f} rows/s")
        self.done = done

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@main.group()
def staff() -> None:
    """Staff users of the console."""


@staff.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "staff", "viewer"]), required=True)
@click.option("--institution", help="Institution a viewer is limited to.")
@click.option("--phone", help="WhatsApp number for staff commands (SIARAN, REKAP).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def staff_add(ctx: Context, name: str, role: str, institution: str | None, phone: str | None,
              password_stdin: bool) -> None:
    """Add a staff user (or reset their password and role)."""
    from bot.staffusers import StaffError, add_staff

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    _ensure_schema(ctx)
    try:
        with ctx.db.session() as session:
            user, created = add_staff(session, name=name, role=role, password=password,
                                      institution=institution, phone=phone)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{'added' if created else 'updated'} staff user {name!r} ({role})")


# --- sending --------------------------------------------------------------------------------

class DayFirstDate(click.ParamType):
    """A date as people write it here: dd/mm/yyyy (31/12/2026), or ISO yyyy-mm-dd."""

    name = "DATE"

    def convert(self, value, param, ctx):
        from bot.staff.formats import parse_date

        if isinstance(value, date):
            return value
        try:
            return parse_date(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


COHORT_HELP = "Cohort name, Institution/Cohort or join code (repeatable)."


@main.group()
def checkin() -> None:
    """Check-in rounds."""


@checkin.command("send")
@click.option("--cohort", "cohorts", multiple=True, help=COHORT_HELP)
@click.option("--all", "all_cohorts", is_flag=True, help="Every active cohort.")
@click.option("--now", is_flag=True, help="Send even during quiet hours.")
@click.option("--force", is_flag=True,
              help="Start the round even where the previous one is still open (its unfinished "
                   "check-ins close as unanswered).")
@pass_ctx
def checkin_send(ctx: Context, cohorts: tuple[str, ...], all_cohorts: bool, now: bool,
                 force: bool) -> None:
    """Start a check-in round now for the named cohorts or all of them.

    Where a cohort's previous round is still open, nothing is sent: the command names how many
    graduates have not finished it and how many are mid-answer, and --force starts it anyway.
    """
    from bot.checkins import CheckinError, RoundStillOpen, start_rounds_now

    if bool(cohorts) == all_cohorts:
        raise click.UsageError("give --cohort NAME (one or more) or --all")
    _ensure_schema(ctx)
    try:
        with ctx.db.session() as session:
            results = start_rounds_now(session, ctx.settings,
                                       cohort_names=list(cohorts) or None,
                                       ignore_quiet_hours=now, force=force)
    except RoundStillOpen as exc:
        for still_open in exc.rounds:
            click.echo(f"warning: {still_open.describe()}", err=True)
        raise click.ClickException(
            f"nothing sent: a new round would close those open check-ins as unanswered and "
            f"ask from the first question again ({exc.mid_answer} graduates are mid-answer). "
            "Add --force to start it anyway.") from None
    except CheckinError as exc:
        raise click.ClickException(str(exc)) from None
    for line, _started in results:
        click.echo(line)
    if sum(started.prompts for _line, started in results if started is not None):
        click.echo("prompts are in the outbox; the dispatcher (kabar scheduler / kabar dispatch) "
                   "sends them")
    else:
        click.echo("nothing was queued")


@main.group()
def broadcast() -> None:
    """Broadcasts to cohorts."""


@broadcast.command("job")
@click.option("--title", required=True)
@click.option("--employer", required=True)
@click.option("--location", required=True)
@click.option("--skill", help="Only graduates with this skill (default: everyone targeted).")
@click.option("--deadline", type=DayFirstDate(),
              help="Last day to apply: DD/MM/YYYY (or YYYY-MM-DD).")
@click.option("--cohort", "cohorts", multiple=True, help=COHORT_HELP)
@click.option("--all", "all_cohorts", is_flag=True, help="Every active cohort.")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["employed", "self_employed", "seeking", "studying"]),
              help="Only graduates whose latest employment status is this (repeatable).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--actor", default="cli", help="Name written to the audit log.")
@pass_ctx
def broadcast_job(ctx: Context, title: str, employer: str, location: str, skill: str | None,
                  deadline, cohorts: tuple[str, ...], all_cohorts: bool,
                  statuses: tuple[str, ...], yes: bool, actor: str) -> None:
    """Create a job opening and send it to the chosen cohorts' active graduates."""
    from bot.broadcasts import (
        BroadcastError,
        JobDraft,
        create_job_broadcast,
        new_job_code,
        preview_job,
        preview_recipients,
    )

    if bool(cohorts) == all_cohorts:
        raise click.UsageError("give --cohort NAME (one or more) or --all")
    draft = JobDraft(title=title, employer=employer, location=location, skill=skill,
                     deadline=deadline,
                     cohort_names=list(cohorts) or None, statuses=list(statuses) or None)
    _ensure_schema(ctx)
    try:
        with ctx.db.session() as session:
            recipients = preview_recipients(session, draft)
            code = new_job_code()
            message = preview_job(ctx.settings, draft, code)
        if not recipients:
            raise BroadcastError("recipients: no active graduate matches these cohorts, skill "
                                 "and status filters; widen the filters")
        click.echo(f"{len(recipients)} graduates will receive this job opening:\n")
        click.echo("\n".join("    " + line for line in message.splitlines()) + "\n")
        if not yes and not click.confirm("Send it now?"):
            raise click.Abort()
        with ctx.db.session() as session:
            job, bc = create_job_broadcast(session, ctx.settings, draft, actor=actor, code=code)
            click.echo(f"job {job.code} sent to {bc.recipient_count} graduates "
                       f"(broadcast {bc.id}); replies: MINAT {job.code}")
    except BroadcastError as exc:
        raise click.ClickException(str(exc)) from None


# --- reporting ------------------------------------------------------------------------------

@main.command("export")
@click.argument("what", type=click.Choice(["progress", "messages", "interests"]))
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default=None,
              help="csv or xlsx; by default the --output extension (.xlsx or .csv), else csv.")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--actor", default="cli", help="Name written to the audit log.")
@click.option("--language", type=click.Choice(["id", "en"]), default=None,
              help="progress: headers and words in this language (default: app.language).")
@click.option("--codes", is_flag=True,
              help="progress: the machine layout (English headers, status codes, ISO times, "
                   "raw replies as JSON) instead of the readable one.")
@pass_ctx
def export_cmd(ctx: Context, what: str, fmt: str | None, output: Path, actor: str,
               language: str | None, codes: bool) -> None:
    """Export progress reports, messages or job interests to CSV or XLSX."""
    from bot import outcomes
    from bot.exports import ExportError, export

    try:
        fmt = outcomes.format_for(output, fmt)
    except ExportError as exc:
        raise click.UsageError(str(exc)) from None
    _ensure_schema(ctx)
    with ctx.db.read_session() as session:
        if what == "progress" and not codes:
            count = outcomes.export(session, fmt, output, actor=actor,
                                    language=language or ctx.settings.app.language,
                                    tz=ctx.settings.tz, audit_db=ctx.db)
        else:
            count = export(session, what, fmt, output, actor=actor, tz=ctx.settings.tz,
                           audit_db=ctx.db)
    click.echo(f"wrote {count} {what} rows to {output} ({fmt})")


# --- personal data (UU PDP 27/2022) ---------------------------------------------------------

@main.group()
def graduate() -> None:
    """One graduate's personal data: erase it, or copy it for them."""


@graduate.command("erase")
@click.argument("who")
@click.option("--actor", default="cli", help="Name written to the audit log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def graduate_erase(ctx: Context, who: str, actor: str, yes: bool) -> None:
    """Erase a graduate (WHO: id or WhatsApp number): name, number, messages, answers."""
    from bot.privacy import PrivacyError, erase_graduate, find_graduate, mask_phone

    _ensure_schema(ctx)
    try:
        with ctx.db.session() as session:
            person = find_graduate(session, who)
            label = f"graduate {person.id} ({person.name}, {mask_phone(person.phone)})"
            if not yes and not click.confirm(f"Erase {label}? This cannot be undone"):
                raise click.Abort()
            counts = erase_graduate(session, person, actor)
    except PrivacyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"erased {label}: {counts['messages']} messages emptied, {counts['reports']} "
               f"reports stripped of their words, {counts['interests']} shortlist entries "
               f"removed; the number is refused by later imports unless --allow-erased")


@graduate.command("export")
@click.argument("who")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--actor", default="cli", help="Name written to the audit log.")
@pass_ctx
def graduate_export(ctx: Context, who: str, output: Path, actor: str) -> None:
    """Write everything Kabar keeps about one graduate to a JSON file (a data-subject copy)."""
    import json

    from bot.auditing import record
    from bot.privacy import PrivacyError, find_graduate, graduate_data

    _ensure_schema(ctx)
    try:
        with ctx.db.read_session() as session:
            person = find_graduate(session, who)
            data = graduate_data(session, person)
    except PrivacyError as exc:
        raise click.ClickException(str(exc)) from None
    output.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    record(ctx.db, actor, "graduate.data_copy", graduate_id=data["graduate"]["id"],
           file=output.name)
    click.echo(f"wrote the data of graduate {data['graduate']['id']} to {output} "
               f"({len(data['messages'])} messages, {len(data['progress_reports'])} reports)")


# --- processes ------------------------------------------------------------------------------

@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@pass_ctx
def serve(ctx: Context, host: str, port: int) -> None:
    """Run the web app (webhook, status callback, simulator) with Flask's server.

    In production run ``gunicorn "bot:create_app()"`` instead.
    """
    from bot import create_app
    from bot.config import TRANSPORT_NOT_CHOSEN

    if not ctx.settings.transport_chosen:
        raise click.ClickException(f"{ctx.settings.source}: {TRANSPORT_NOT_CHOSEN}")
    _ensure_schema(ctx)
    create_app(ctx.settings, ctx.db).run(host=host, port=port)


@main.command("scheduler")
@click.option("--no-dispatch", is_flag=True, help="Do not run the outbox dispatcher here.")
@pass_ctx
def scheduler_cmd(ctx: Context, no_dispatch: bool) -> None:
    """Run the scheduler: check-in rounds per cohort, reminders, expiry (and the dispatcher).

    Several may run against one database: one leads, the others stand by and take over within
    seconds when it stops or dies.
    """
    from scheduler.service import run_scheduler

    _ensure_schema(ctx)
    run_scheduler(ctx.settings, ctx.db, run_dispatcher=not no_dispatch
                  and ctx.settings.scheduler.run_dispatcher)


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the /healthz report as JSON.")
@pass_ctx
def status_cmd(ctx: Context, as_json: bool) -> None:
    """Show the scheduler leader and standbys, dispatchers and backlogs (as /healthz).

    Exit status: 0 ok, 1 degraded (the reasons are listed), 2 the database cannot be read.
    """
    import json

    from sqlalchemy.exc import SQLAlchemyError

    from bot.health import OK, UNAVAILABLE, report

    try:
        found = report(ctx.db, lease_seconds=ctx.settings.dispatch.claim_lease_seconds)
    except SQLAlchemyError as exc:
        reason = (f"the database at {_safe_url(ctx.settings.database.url)} cannot be read "
                  f"({type(exc).__name__}: {str(exc).splitlines()[0]})")
        if as_json:
            click.echo(json.dumps({"status": UNAVAILABLE, "reason": reason}, indent=2))
        else:
            click.echo(f"Kabar: {UNAVAILABLE}: {reason}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
    else:
        click.echo(_status_text(found))
    sys.exit(0 if found["status"] == OK else 1)


def _status_text(found: dict) -> str:
    """The health report for a terminal."""
    lines = [f"Kabar: {found['status']}"]
    lines += [f"  ! {problem}" for problem in found["problems"]]
    lines.append("scheduler")
    lead = found["scheduler"]["leader"]
    if lead:
        nxt = lead.get("next_job")
        lines.append(f"  leader   {lead['name']}  since {_when(lead['since'])}, "
                     f"last beat {lead['seconds_since_beat']:.0f} s ago"
                     + (f", next: {nxt['name']} at {_when(nxt['at'])}" if nxt else ""))
        for run in lead.get("running") or []:
            lines.append(f"           running {run['job']} (fire time {_when(run['at'])})")
    else:
        lines.append("  leader   none")
    for standby in found["scheduler"]["standbys"]:
        lines.append(f"  standby  {standby['name']}  since {_when(standby['since'])}, "
                     f"last beat {standby['seconds_since_beat']:.0f} s ago")
    if not found["scheduler"]["standbys"]:
        lines.append("  standby  none")
    lines.append("dispatchers")
    for d in found["dispatchers"]:
        figures = ", ".join(f"{k} {v}" for k, v in (d.get("detail") or {}).items())
        lines.append(f"  {d['name']}  {d['role'] or '-'}  "
                     f"{'alive' if d['alive'] else 'GONE'}, last beat "
                     f"{d['seconds_since_beat']:.0f} s ago" + (f"  ({figures})" if figures else ""))
    if not found["dispatchers"]:
        lines.append("  none reported")
    out = found["outbox"]
    oldest = out["oldest_due_seconds"]
    lines.append("outbox")
    lines.append(f"  due now {out['due_now']}"
                 + (f" (oldest waiting {oldest:.0f} s)" if oldest is not None else "")
                 + f", sending {out['sending']}, unsettled {out['unsettled']}")
    lines.append("inbox")
    lines.append(f"  waiting {found['inbox_waiting']}")
    replica = found.get("replica")
    if replica is not None:
        lag = replica["lag_seconds"]
        lines.append("read replica")
        lines.append(f"  {'in use' if replica['usable'] else 'NOT IN USE: ' + replica['reason']}"
                     + (f", {lag:.1f} s behind" if lag is not None else ""))
    return "\n".join(lines)


def _when(iso: str | None) -> str:
    if not iso:
        return "?"
    from datetime import datetime

    return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M:%S %Z}"


@main.command()
@click.option("--once", is_flag=True, help="Send what is due and exit.")
@pass_ctx
def dispatch(ctx: Context, once: bool) -> None:
    """Handle incoming messages and send the outbox (several may run at once on PostgreSQL)."""
    from bot.dispatcher import Dispatcher

    _ensure_schema(ctx)
    dispatcher = Dispatcher(ctx.settings, ctx.db)
    if once:
        from bot.inbox import handle_waiting

        handled = handle_waiting(ctx.db, ctx.settings)
        click.echo(f"handled {handled} incoming, sent {dispatcher.run_once()} messages")
    else:
        import signal
        import threading

        # systemd stops with SIGTERM: stop as on Ctrl-C (requests in flight finish and are
        # recorded, claimed messages not yet sent are given back).
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        dispatcher.run_forever(stop)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--data-dir", default="kabar-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the demo keeps its SQLite database.")
@click.option("--fresh", is_flag=True, help="Start over with new sample data.")
def demo(host: str, port: int, data_dir: Path, fresh: bool) -> None:
    """Try Kabar: SQLite, simulator, sample data, web + scheduler + dispatcher in one process."""
    from bot.security import is_loopback_host

    if not is_loopback_host(host):
        raise click.ClickException(
            f"--host {host}: the demo's simulator needs no sign-in and shows every graduate, "
            "so the demo listens on this computer only (127.0.0.1, ::1 or localhost). To serve "
            "other machines, write a configuration and run `kabar serve` or gunicorn.")
    from bot.demo import run_demo

    run_demo(host=host, port=port, data_dir=data_dir, fresh=fresh)


# --- helpers --------------------------------------------------------------------------------

def _ensure_schema(ctx: Context) -> None:
    """Refuse to work on a database that was never upgraded, with the fix in the message."""
    from sqlalchemy.engine import make_url

    from bot.migrate import is_current

    url = make_url(ctx.settings.database.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).exists():
        # Opening it would leave an empty file behind; say where Kabar looked instead.
        raise click.ClickException(
            f"there is no database at {url.database}: set database.url in the configuration "
            f"file (--config) or KABAR_DATABASE_URL (the demo's is sqlite:///kabar-demo/"
            f"kabar-demo.db), or create a new one with `kabar db upgrade`")
    if not is_current(ctx.db.engine):
        raise click.ClickException(
            f"the database at {_safe_url(ctx.settings.database.url)} is not up to date: "
            "run `kabar db upgrade` first")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    main()
