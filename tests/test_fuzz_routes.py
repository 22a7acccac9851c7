"""Every route, every parameter it reads, odd values, every role: 4xx at worst, never 5xx.

The routes come from the app's own URL map, so a new page is covered the day it is added.
Which query-string and form parameters a route reads is found by asking it: a first request
records every name the view looks up. Then each of those parameters gets each odd value alone,
and all of them at once, as an admin, staff, a viewer of one institution and someone not
signed in. Ids in paths are real rows, so the views go all the way to the database.
"""

from __future__ import annotations

import random
import re
import traceback
from collections import Counter
from datetime import date
from urllib.parse import quote

import pytest
from flask import got_request_exception, request, url_for
from werkzeug.datastructures import ImmutableMultiDict

from bot import create_app
from bot.demo import seed_sample_data
from bot.models import (
    Cohort,
    Graduate,
    Institution,
    JobOpening,
    ProgressReport,
    VocabularyEntry,
)
from bot.staffusers import add_staff
from tests.staff_helpers import PASSWORD

ODD_VALUES = ["²", "١٢", "9" * 20, "-1", "0", "0001-01-01", "9999-12-31", "0001-01-01T00:00",
              "a\x00b", "\x00", "x\r\ny", "1" * 400, "1e309", "NaN", "'\"<>%", "ｆｕｌｌ"]
ROLES = ["admin", "staff", "viewer", "anonymous"]
RAISED: Counter[tuple[str, str]] = Counter()
SKIP_ENDPOINTS = {"static", "staff.static"}


class Recording(ImmutableMultiDict):
    """A query string or form that remembers every name the view looked up."""

    seen: set[str]

    def _note(self, key):
        if isinstance(key, str):
            self.seen.add(key)

    def get(self, key, default=None, type=None):  # noqa: A002
        self._note(key)
        return super().get(key, default, type)

    def __getitem__(self, key):
        self._note(key)
        return super().__getitem__(key)

    def getlist(self, key, type=None):  # noqa: A002
        self._note(key)
        return super().getlist(key, type)

    def __contains__(self, key):
        self._note(key)
        return super().__contains__(key)


@pytest.fixture
def fuzz_app(settings, db):
    with db.session() as session:
        seed_sample_data(session, settings, random.Random(7), today=date(2026, 5, 4))
        institution = session.query(Institution).order_by(Institution.id).first()
        cohort = session.query(Cohort).filter_by(institution_id=institution.id).first()
        graduate = session.query(Graduate).filter_by(cohort_id=cohort.id).first()
        report = session.query(ProgressReport).order_by(ProgressReport.id).first()
        job = session.query(JobOpening).order_by(JobOpening.id).first()
        add_staff(session, name="fuzz-admin", role="admin", password=PASSWORD)
        add_staff(session, name="fuzz-staff", role="staff", password=PASSWORD)
        add_staff(session, name="fuzz-viewer", role="viewer", password=PASSWORD,
                  institution=institution.name)
        target, _ = add_staff(session, name="fuzz-target", role="staff", password=PASSWORD)
        entry = VocabularyEntry(reading="nothing", phrase="adem ayem", meaning="nothing",
                                created_by="fuzz-admin")
        session.add(entry)
        session.flush()
        ids = {"cohort_id": cohort.id, "graduate_id": report.graduate_id if report else
               graduate.id, "report_id": report.id if report else 1, "job_id": job.id,
               "user_id": target.id, "entry_id": entry.id, "token": "no-such-upload"}
    app = create_app(settings, db)
    # A failing view answers 500 (as in production) instead of raising into the test.
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False, PROPAGATE_EXCEPTIONS=False)
    seen: set[str] = set()

    @app.before_request
    def _record_lookups():
        for name in ("args", "form"):
            recording = Recording(getattr(request, name))
            recording.seen = seen
            setattr(request, name, recording)

    def _where(_sender, exception, **_extra):  # where a 500 came from, for the failure
        frames = [f for f in traceback.extract_tb(exception.__traceback__)
                  if "/bot/" in f.filename]
        place = f"{frames[-1].filename.split('/bot/')[-1]}:{frames[-1].lineno}" if frames else "?"
        RAISED[place, type(exception).__name__] += 1

    got_request_exception.connect(_where, app, weak=False)
    app.extensions["fuzz.seen"] = seen
    app.extensions["fuzz.ids"] = ids
    return app


def _client(app, role: str):
    client = app.test_client()
    if role != "anonymous":
        answer = client.post("/staff/login", data={"name": f"fuzz-{role}",
                                                   "password": PASSWORD})
        assert answer.status_code == 302
    return client


def _routes(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, path with real ids) for every route; signing out comes last."""
    ids = app.extensions["fuzz.ids"]
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP_ENDPOINTS:
            continue
        values = {arg: ids.get(arg, "csv") for arg in rule.arguments}
        with app.test_request_context():
            path = url_for(rule.endpoint, **values)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, path))
    return sorted(found, key=lambda r: (r[0] == "staff.logout", r))


def _odd_paths(app) -> list[tuple[str, str]]:
    """Each route with each odd value in every path segment that is not a real id."""
    ids = app.extensions["fuzz.ids"]
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP_ENDPOINTS or rule.endpoint == "staff.logout":
            continue
        for value in ODD_VALUES + ["99999999999999999999", "x" * 300]:
            path = re.sub(r"<(?:[^:<>]+:)?(\w+)>",
                          lambda m, v=value, args=rule.arguments: quote(v, safe="")
                          if m.group(1) not in ids or args == {m.group(1)}
                          else str(ids[m.group(1)]),
                          rule.rule)
            found += [(method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


@pytest.mark.parametrize("role", ROLES)
def test_odd_values_in_every_parameter_never_answer_5xx(fuzz_app, role):
    app, seen = fuzz_app, fuzz_app.extensions["fuzz.seen"]
    client = _client(app, role)
    failures, codes, tried = [], Counter(), 0
    routes = _routes(app)
    for endpoint, method, path in routes:
        send = client.get if method == "GET" else client.post
        seen.clear()
        first = send(path)  # which names does this route look up?
        codes[first.status_code] += 1
        names = sorted(seen)
        for value in ODD_VALUES:
            cases = [dict.fromkeys(names, value)]
            if role == "admin":  # each name alone as well (the others absent)
                cases += [{name: value} for name in names]
            for params in cases:
                if method == "GET":
                    answer = client.get(path, query_string=params)
                else:
                    answer = client.post(path, data=params, query_string=params)
                tried += 1
                codes[answer.status_code] += 1
                if answer.status_code >= 500:
                    failures.append((method, path, sorted(params), value))
        if endpoint == "staff.logout":
            client = _client(app, role)
    for method, path in _odd_paths(app):  # odd values in the path itself
        answer = (client.get if method == "GET" else client.post)(path)
        tried += 1
        codes[answer.status_code] += 1
        if answer.status_code >= 500:
            failures.append((method, path, [], "in the path"))
    print(f"\n{role}: {len(routes)} routes x {len(ODD_VALUES)} odd values, "
          f"{tried} requests: " + ", ".join(f"{c}: {n}" for c, n in sorted(codes.items())))
    assert not failures, (dict(RAISED), failures[:20])
