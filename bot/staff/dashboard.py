"""Dashboard: per institution and cohort, the numbers staff report on.

Every figure is aggregated by the database (GROUP BY per cohort, per round time, per status)
from the stored summaries, about one row per graduate and per round;
Python only adds up those few grouped rows into institution and overall totals, buckets round
times into local days and months, and lays out charts. Lists (needs help, not answered, opted
out) are capped at ``LIST_LIMIT`` rows with their full count beside them.

Definitions:

- graduates: active graduate rows (a number still joining is not one yet); opted out among them.
- a round: a check-in of a whole cohort (``schedule`` or ``manual``; a graduate's own ``CEK`` is
  not a round of the cohort). Rounds of several cohorts on the same local day are one bar.
- prompted / responded: the round's progress reports / those with a first reply.
- employment status and skill use: from each graduate's latest answer (the answered report of
  the latest round, kept on the graduate row by ``bot.summaries``); graduates without one are
  ``unknown``. Needs help: the graduate's latest word on help asks for help.
- not answered: active, not opted-out graduates with no reply to their cohort's latest round.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import abort, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import and_, any_, case, func, literal, or_, select, true
from sqlalchemy.orm import Session

from bot.models import (
    EMPLOYMENT_STATUSES,
    CheckInRound,
    Cohort,
    Graduate,
    Institution,
    ProgressReport,
    utcnow,
)
from bot.staff import bp
from bot.staff.auth import cohort_or_404
from bot.staff.charts import Bar, Point, Segment, bar_chart, line_chart, stacked_bars
from bot.staff.formats import number_text
from bot.staff.i18n import current_language, t
from bot.staff.reads import page_session
from bot.staff.replylog import int_arg
from bot.staff.timeline import count_if, day_label, local, month_name, short_date, when

ROUNDS_SHOWN = 6
RATING_MONTHS = 12
LIST_LIMIT = 100
PER_COHORT_CHART_MAX = 24  # cohorts in the per-cohort status chart
COHORT_ROWS_MAX = 60  # beyond this many cohorts the table shows institutions only
FEW_ROUNDS = 100  # up to this many latest rounds are looked up by id
SELF_TRIGGER = "self"  # a round one graduate started with CEK (bot.checkins.ROUND_TRIGGERS)
STATUSES = (*EMPLOYMENT_STATUSES, "unknown")
STATUS_COLORS = {"employed": "#128c7e", "self_employed": "#2e86c1", "seeking": "#d68910",
                 "studying": "#8e44ad", "unknown": "#b8c2bf"}


@dataclass(frozen=True)
class Scope:
    """What the dashboard is about: everything visible, one institution, or one cohort."""

    institution_id: int | None = None
    cohort_id: int | None = None
    sure_only: bool = False  # leave out statuses Kabar guessed (``?sure=1``)

    def on(self, column):
        """A condition limiting a ``cohort_id`` column to this scope."""
        if self.cohort_id is not None:
            return column == self.cohort_id
        if self.institution_id is not None:
            return column.in_(select(Cohort.id).where(Cohort.institution_id == self.institution_id)
                              .correlate(None))
        return column.is_not(None)


@dataclass(slots=True)
class Figures:
    """The numbers of one cohort, one institution or everything in scope."""

    label: str
    cohort_id: int | None = None
    institution_id: int | None = None
    graduates: int = 0
    opted_out: int = 0
    statuses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    uses_skill: int = 0  # employed and using the trained skill
    other_skill: int = 0  # employed, not using it
    needs_help: int = 0
    round_at: datetime | None = None  # the latest round (for a cohort)
    prompted: int = 0
    responded: int = 0
    silent: int = 0  # not answered, reachable

    @property
    def receiving(self) -> int:
        return self.graduates - self.opted_out

    @property
    def working(self) -> int:
        return self.statuses["employed"] + self.statuses["self_employed"]

    @property
    def known(self) -> int:
        return self.graduates - self.statuses["unknown"]

    def add(self, other: Figures) -> None:
        self.graduates += other.graduates
        self.opted_out += other.opted_out
        self.uses_skill += other.uses_skill
        self.other_skill += other.other_skill
        self.needs_help += other.needs_help
        self.prompted += other.prompted
        self.responded += other.responded
        self.silent += other.silent
        for status, count in other.statuses.items():
            self.statuses[status] += count


def percent(part: int, whole: int) -> str:
    return f"{round(part / whole * 100)}%" if whole else "–"


# --- queries --------------------------------------------------------------------------------
# They read the stored summaries (bot.summaries): each graduate's latest answer on the
# graduate row, each round's counts on the round row. So the unfiltered dashboard reads about
# one row per graduate and one per round, however many reports and messages there are.

def _latest_rounds(scope: Scope):
    """The latest cohort round (not a graduate's own CEK) of each in-scope cohort."""
    latest = (select(CheckInRound.cohort_id, func.max(CheckInRound.scheduled_for).label("at"))
              .where(CheckInRound.trigger != SELF_TRIGGER, scope.on(CheckInRound.cohort_id))
              .group_by(CheckInRound.cohort_id).subquery("latest_round"))
    return latest, and_(CheckInRound.cohort_id == latest.c.cohort_id,
                        CheckInRound.scheduled_for == latest.c.at,
                        CheckInRound.trigger != SELF_TRIGGER)


def cohort_figures(session: Session, scope: Scope) -> dict[int, Figures]:
    """Figures per cohort in scope (every cohort, even one with no graduates yet)."""
    connection = session.connection()

    def rows(stmt) -> list:
        """All rows at once, as plain tuples (Core, not the ORM's loading): thousands of
        cohorts and rounds in a province."""
        return connection.execute(stmt).all()

    figures = {cohort_id: Figures(label=name, cohort_id=cohort_id, institution_id=institution_id)
               for cohort_id, name, institution_id in rows(
                   select(Cohort.id, Cohort.name, Cohort.institution_id)
                   .where(scope.on(Cohort.id)).order_by(Cohort.name))}
    status, skill = Graduate.answer_status, Graduate.answer_uses_skill
    if scope.sure_only:  # a guessed status counts as unknown
        status = case((Graduate.answer_guessed.is_(True), None), else_=status)
    employed = status == "employed"
    # One row per cohort with a count per status: no sorting of every graduate's row.
    for cohort_id, total, out, *by_status, uses, other, helped in rows(
            select(Graduate.cohort_id, func.count(), count_if(Graduate.opted_out.is_(True)),
                   *(count_if(status == s) for s in EMPLOYMENT_STATUSES),
                   count_if(and_(employed, skill.is_(True))),
                   count_if(and_(employed, skill.is_(False))),
                   count_if(Graduate.help_report_id.is_not(None)))
            .where(Graduate.active.is_(True), scope.on(Graduate.cohort_id))
            .group_by(Graduate.cohort_id)):
        f = figures.get(cohort_id)
        if f is None:
            continue
        f.graduates, f.opted_out, f.uses_skill, f.other_skill, f.needs_help = \
            total, out, uses, other, helped
        f.statuses.update(zip(EMPLOYMENT_STATUSES, by_status, strict=True))
        f.statuses["unknown"] = total - sum(by_status)
    rounds, on_latest = _latest_rounds(scope)
    latest: dict[int, Figures] = {}  # round id -> its cohort's figures
    # The round's time is shown only in the cohort rows, which a province has too many for.
    at_column = (CheckInRound.scheduled_for if len(figures) <= COHORT_ROWS_MAX
                 else literal(None).label("at"))
    for round_id, cohort_id, at, prompted, responded in rows(
            select(CheckInRound.id, CheckInRound.cohort_id, at_column,
                   CheckInRound.prompted, CheckInRound.responded)
            .join(rounds, on_latest)):
        if cohort_id in figures:
            f = latest[round_id] = figures[cohort_id]
            f.round_at, f.prompted, f.responded = at, prompted, responded
            f.silent = prompted - responded
    # Nobody calls those who opted out (or left). There are few of them: their unanswered
    # reports are read starting from them (or, for a few cohorts, from those rounds), and
    # those of a latest round are taken off here.
    gone = or_(Graduate.opted_out.is_(True), Graduate.active.is_(False))
    unanswered = select(ProgressReport.round_id).where(ProgressReport.responded_at.is_(None))
    if len(latest) <= FEW_ROUNDS:
        found = rows(unanswered.join(Graduate, Graduate.id == ProgressReport.graduate_id)
                     .where(gone, ProgressReport.round_id.in_(list(latest))))
    elif connection.dialect.name == "postgresql":
        # Their ids as one array (ix_graduates_unreachable), then their reports by graduate:
        # a join would read every report of every round to find these few.
        found = rows(unanswered.where(ProgressReport.graduate_id == any_(
            func.array(select(Graduate.id).where(gone).scalar_subquery()))))
    else:
        found = rows(unanswered.join(Graduate, Graduate.id == ProgressReport.graduate_id)
                     .where(gone))
    for (round_id,) in found:
        if round_id in latest:
            latest[round_id].silent -= 1
    return figures


@dataclass
class RoundFigures:
    rates: list[tuple[date, int, int]]  # (local day, prompted, responded), oldest first
    ratings: list[tuple[int, int, float | None, int]]  # (year, month, average, ratings)


def round_figures(session: Session, scope: Scope) -> RoundFigures:
    """Response rates of the last ``ROUNDS_SHOWN`` round days and ratings per month.

    Read from the rounds' stored counts, added up per round time (several cohorts' rounds at
    the same moment are one), then per local day and month here.
    """
    since = utcnow() - timedelta(days=31 * RATING_MONTHS)
    days: list[date] = []
    for moment in session.scalars(
            select(CheckInRound.scheduled_for).distinct()
            .where(CheckInRound.trigger != SELF_TRIGGER, scope.on(CheckInRound.cohort_id))
            .order_by(CheckInRound.scheduled_for.desc()).limit(200)):
        day = local(moment).date()
        if day not in days:
            if len(days) == ROUNDS_SHOWN:
                break
            days.append(day)
        since = min(since, moment)
    rates: dict[date, list[int]] = {day: [0, 0] for day in days}
    months: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    rating_since = utcnow() - timedelta(days=31 * RATING_MONTHS)
    for at, trigger, prompted, responded, rating_sum, ratings in session.execute(
            select(CheckInRound.scheduled_for, CheckInRound.trigger,
                   func.sum(CheckInRound.prompted), func.sum(CheckInRound.responded),
                   func.sum(CheckInRound.rating_sum), func.sum(CheckInRound.ratings))
            .where(scope.on(CheckInRound.cohort_id), CheckInRound.scheduled_for >= since)
            .group_by(CheckInRound.scheduled_for, CheckInRound.trigger)):
        moment = local(at)
        if trigger != SELF_TRIGGER and moment.date() in rates:
            rates[moment.date()][0] += int(prompted or 0)
            rates[moment.date()][1] += int(responded or 0)
        if ratings and at >= rating_since:
            months[(moment.year, moment.month)][0] += int(rating_sum or 0)
            months[(moment.year, moment.month)][1] += int(ratings)
    return RoundFigures([(day, *rates[day]) for day in sorted(days)], _months(months))


def _months(sums: dict[tuple[int, int], list[int]]) -> list[tuple[int, int, float | None, int]]:
    """Every month from the first to the last with ratings (None where a month has none)."""
    if not sums:
        return []
    year, month = min(sums)
    last = max(sums)
    months = []
    while (year, month) <= last:
        total, count = sums.get((year, month), (0, 0))
        months.append((year, month, total / count if count else None, count))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months[-RATING_MONTHS:]


def needs_help_list(session: Session, scope: Scope) -> list:
    """Graduates whose latest word on help asks for help, newest request first."""
    said = func.coalesce(ProgressReport.completed_at, ProgressReport.responded_at,
                         ProgressReport.created_at)
    return session.execute(
        select(Graduate.id, Graduate.name, Graduate.phone, Graduate.opted_out,
               Cohort.name.label("cohort"), ProgressReport.needs_help, said.label("said_at"))
        .select_from(Graduate)
        .join(ProgressReport, ProgressReport.id == Graduate.help_report_id)
        .join(Cohort, Cohort.id == Graduate.cohort_id)
        .where(Graduate.help_report_id.is_not(None),  # as ix_graduates_help_report reads
               Graduate.active.is_(True), scope.on(Graduate.cohort_id))
        .order_by(Graduate.help_report_id.desc()).limit(LIST_LIMIT)).all()


def not_answered_list(session: Session, scope: Scope,
                      per_cohort: dict[int, Figures] | None = None) -> list:
    """Who has not answered their cohort's latest round, by cohort and name (a call list).

    With the cohorts' figures at hand, only the first cohorts (by name) whose silent counts
    add up to ``LIST_LIMIT`` are read: the list is the same, without sorting everyone.
    """
    rounds, on_latest = _latest_rounds(scope)
    stmt = (select(Graduate.id, Graduate.name, Graduate.phone, Cohort.name.label("cohort"),
                   CheckInRound.scheduled_for, ProgressReport.reminded_at)
            .select_from(CheckInRound).join(rounds, on_latest)
            .join(ProgressReport, ProgressReport.round_id == CheckInRound.id)
            .join(Graduate, Graduate.id == ProgressReport.graduate_id)
            .join(Cohort, Cohort.id == CheckInRound.cohort_id)
            .where(ProgressReport.responded_at.is_(None), Graduate.opted_out.is_(False),
                   Graduate.active.is_(True))
            .order_by(Cohort.name, Graduate.name, Graduate.id).limit(LIST_LIMIT))
    if per_cohort is not None:
        stmt = stmt.where(CheckInRound.cohort_id.in_(_first_silent_cohorts(per_cohort)))
    return session.execute(stmt).all()


def _first_silent_cohorts(per_cohort: dict[int, Figures]) -> list[int]:
    """The cohorts, in name order, whose silent graduates make up the first ``LIST_LIMIT``
    (every cohort sharing the last one's name too: their people sort together).

    ``per_cohort`` is in the order the database sorted the names (``cohort_figures``), so the
    cut agrees with the list's ``ORDER BY`` whatever the collation."""
    chosen: list[int] = []
    count, last_name = 0, None
    for f in per_cohort.values():  # in the database's order of names, as the list is sorted
        if count >= LIST_LIMIT and f.label != last_name:
            break
        if f.silent > 0:
            chosen.append(f.cohort_id)
            count += f.silent
            last_name = f.label
    return chosen


def not_understood_list(session: Session, scope: Scope) -> list:
    """Who Kabar could not understand three times in their cohort's latest round (or their
    own CEK) and who has not told their status since: staff should call them."""
    return session.execute(
        select(Graduate.id, Graduate.name, Graduate.phone, Cohort.name.label("cohort"),
               CheckInRound.scheduled_for)
        .select_from(ProgressReport)
        .join(CheckInRound, CheckInRound.id == ProgressReport.round_id)
        .join(Graduate, Graduate.id == ProgressReport.graduate_id)
        .join(Cohort, Cohort.id == Graduate.cohort_id)
        .where(ProgressReport.not_understood == true(),  # as the partial index reads it
               ProgressReport.employment_status.is_(None),
               Graduate.active.is_(True), Graduate.opted_out.is_(False),
               scope.on(Graduate.cohort_id),
               or_(Graduate.answer_report_id.is_(None),
                   Graduate.answer_report_id < ProgressReport.id))
        .order_by(ProgressReport.id.desc()).limit(LIST_LIMIT)).all()


def opted_out_list(session: Session, scope: Scope) -> list:
    return session.execute(
        select(Graduate.id, Graduate.name, Graduate.phone, Cohort.name.label("cohort"),
               Graduate.opted_out_at)
        .join(Cohort, Cohort.id == Graduate.cohort_id)
        .where(Graduate.opted_out.is_(True), Graduate.active.is_(True),
               scope.on(Graduate.cohort_id))
        .order_by(Graduate.opted_out_at.desc().nulls_last(), Graduate.id)
        .limit(LIST_LIMIT)).all()


# --- charts ---------------------------------------------------------------------------------

def _status_segments(f: Figures) -> list[Segment]:
    return [Segment(t(f"graduate.statuses.{s}"), f.statuses[s], STATUS_COLORS[s])
            for s in STATUSES]


def charts(total: Figures, per_cohort: list[Figures], rounds: RoundFigures) -> dict:
    share = t("dashboard.share_of")
    made = {
        "rates": bar_chart(
            [Bar(label=f"{day:%d/%m}",
                 value=responded / prompted * 100 if prompted else 0,
                 text=percent(responded, prompted),
                 title=t("dashboard.rate_title", day=day_label(day), responded=responded,
                         prompted=prompted, rate=percent(responded, prompted)))
             for day, prompted, responded in rounds.rates],
            title=t("dashboard.chart_rates"), max_value=100, empty=t("dashboard.no_rounds")),
        "statuses": stacked_bars([(total.label, _status_segments(total))],
                                 title=t("dashboard.chart_statuses"), percent_of=share,
                                 empty=t("dashboard.no_graduates"), width=420),
        "skill": stacked_bars(
            [(total.label, [
                Segment(t("dashboard.uses_skill"), total.uses_skill, "#128c7e"),
                Segment(t("dashboard.other_skill"), total.other_skill, "#d68910"),
                Segment(t("dashboard.skill_unknown"),
                        total.statuses["employed"] - total.uses_skill - total.other_skill,
                        "#b8c2bf")])],
            title=t("dashboard.chart_skill"), percent_of=share,
            empty=t("dashboard.no_employed"), width=420),
        "ratings": line_chart(
            [Point(label=f"{month_name(month, short=True)} {year}", value=avg,
                   title=t("dashboard.rating_title", month=f"{month_name(month)} {year}",
                           average=number_text(avg), count=count))
             for year, month, avg, count in rounds.ratings],
            title=t("dashboard.chart_ratings"), y_min=1, y_max=5,
            decimal="," if current_language() == "id" else ".",
            empty=t("dashboard.no_ratings")),
        "by_cohort": None,
    }
    shown = [f for f in per_cohort if f.graduates]
    if 1 < len(shown) <= PER_COHORT_CHART_MAX:
        made["by_cohort"] = stacked_bars([(f.label, _status_segments(f)) for f in shown],
                                         title=t("dashboard.chart_by_cohort"),
                                         percent_of=share, legend=False, width=640)
    return made


# --- the page -------------------------------------------------------------------------------

def roll_up(per_cohort: dict[int, Figures],
            names: dict[int, str]) -> tuple[Figures, list[Figures]]:
    """The overall figures and one row per institution, added up from the cohorts' figures."""
    total = Figures(label=t("dashboard.all"))
    institutions: dict[int, Figures] = {}
    for f in per_cohort.values():
        institution = institutions.get(f.institution_id)
        if institution is None:
            institution = institutions[f.institution_id] = Figures(
                label=names.get(f.institution_id, "?"), institution_id=f.institution_id)
        institution.add(f)
    for institution in institutions.values():
        total.add(institution)
    return total, sorted(institutions.values(), key=lambda f: f.label)


def _cohort_options(session: Session, institution_ids: list[int],
                    scope: Scope) -> tuple[dict[int, list], bool]:
    """Cohorts for the filter, per institution; with very many only the chosen institution's
    (and True when an institution must be chosen first)."""
    stmt = (select(Cohort.id, Cohort.name, Cohort.institution_id)
            .where(Cohort.institution_id.in_(institution_ids)).order_by(Cohort.name))
    choose_first = False
    if session.scalar(select(func.count()).select_from(Cohort)
                      .where(Cohort.institution_id.in_(institution_ids))) > COHORT_ROWS_MAX:
        stmt = stmt.where(Cohort.institution_id == scope.institution_id)
        choose_first = scope.institution_id is None
    rows = session.execute(stmt).all()
    options: dict[int, list] = defaultdict(list)
    for row in rows:
        options[row.institution_id].append(row)
    return options, choose_first


def _scope(session: Session) -> Scope:
    """The filter from ``?institution=`` / ``?cohort=``; a viewer is kept to their institution."""
    own = current_user.scope_institution_id
    cohort_id = int_arg("cohort")
    institution_id = int_arg("institution")
    sure = request.args.get("sure") == "1"
    if cohort_id:
        cohort = cohort_or_404(session, cohort_id)
        return Scope(cohort.institution_id, cohort.id, sure)
    if institution_id:
        if (own is not None and institution_id != own) or \
                session.get(Institution, institution_id) is None:
            abort(404)
        return Scope(institution_id, sure_only=sure)
    return Scope(own, sure_only=sure)


@bp.get("/dashboard")
@login_required
def dashboard():
    """Figures, charts and lists for everything visible, one institution or one cohort."""
    with page_session() as session:
        scope = _scope(session)
        own = current_user.scope_institution_id
        institutions = session.execute(
            select(Institution.id, Institution.name)
            .where(Institution.id == own if own is not None else Institution.id.is_not(None))
            .order_by(Institution.name)).all()
        names = dict(institutions)
        cohort_options, choose_first = _cohort_options(session, list(names), scope)
        per_cohort = cohort_figures(session, scope)
        total, institution_rows = roll_up(per_cohort, names)
        if scope.cohort_id is not None:
            total.label = per_cohort[scope.cohort_id].label
        elif scope.institution_id is not None:
            total.label = names.get(scope.institution_id, total.label)
        cohort_rows = sorted(per_cohort.values(),
                             key=lambda f: (names.get(f.institution_id, ""), f.label))
        help_rows = needs_help_list(session, scope)
        silent_rows = not_answered_list(session, scope, per_cohort)
        unclear_rows = not_understood_list(session, scope)
        out_rows = opted_out_list(session, scope)
        made = charts(total, cohort_rows, round_figures(session, scope))
        return render_template(
            "staff/dashboard.html", scope=scope, institutions=institutions,
            cohort_options=cohort_options, choose_institution_first=choose_first,
            total=total, institution_rows=institution_rows,
            cohort_rows=cohort_rows if len(cohort_rows) <= COHORT_ROWS_MAX else [],
            too_many_cohorts=len(cohort_rows) > COHORT_ROWS_MAX, charts=made,
            help_rows=help_rows, silent_rows=silent_rows, out_rows=out_rows,
            unclear_rows=unclear_rows,
            list_limit=LIST_LIMIT, percent=percent, when=when, short_date=short_date,
            local=local)
