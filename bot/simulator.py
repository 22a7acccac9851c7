"""The simulator: try Kabar in a browser as if you were a graduate on WhatsApp.

Registered only with the simulator transport (``create_app``), and answers only in ``kabar
demo`` (loopback) or to signed-in admin/staff users (``bot.security.guard_simulator``), because
it skips the signature check: a message typed here is turned into the very form Twilio would
post and handed to the same code as the webhook (``bot.webhook.receive_form``). Outbound
messages are the outbox rows; the simulator transport marks them delivered, and the page polls
for them.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, abort, jsonify, render_template, request, url_for
from sqlalchemy import func, or_, select

from bot import get_db, get_settings
from bot.cleaning import id_value
from bot.inbox import handle_waiting
from bot.models import Cohort, Graduate, Institution, Message, utcnow
from bot.phones import PhoneError, normalize_phone, to_whatsapp
from bot.security import guard_simulator
from bot.staff.formats import DATE_FORMAT, kind_label, status_label
from bot.staff.i18n import t
from bot.webhook import receive_form

bp = Blueprint("simulator", __name__, url_prefix="/simulator")
bp.before_request(guard_simulator)  # kabar demo on loopback, else signed-in staff only

SANDBOX_SENDER = "whatsapp:+14155238886"  # Twilio's WhatsApp sandbox number
MAX_GRADUATES_LISTED = 2000
MAX_MESSAGES_PER_POLL = 200
# What the media menu sends: a placeholder URL and the content type WhatsApp would give.
# Texts the page's script shows (simulator.* in bot/staff/text/<lang>/simulator.toml).
SCRIPT_TEXTS = ("no_cohort_short", "opted_out", "inactive", "not_on_roster", "no_messages",
                "load_failed", "webhook_answered", "checkin_started", "checkin_exists")
MEDIA_SAMPLES = {
    "voice": ("https://media.example/simulator/voice.ogg", "audio/ogg"),
    "image": ("https://media.example/simulator/photo.jpg", "image/jpeg"),
    "sticker": ("https://media.example/simulator/sticker.webp", "image/webp"),
}


@bp.get("/")
def page() -> str:
    """Cohorts and their graduates on the left, the chosen graduate's chat on the right."""
    with get_db().session() as session:
        rows = session.execute(
            select(Cohort.id, Cohort.name, Institution.name, Cohort.join_code)
            .join(Institution, Cohort.institution_id == Institution.id)
            .order_by(Institution.name, Cohort.name)).all()
        graduates = session.execute(
            select(Graduate.id, Graduate.name, Graduate.phone, Graduate.cohort_id,
                   Graduate.opted_out, Graduate.active)
            .order_by(Graduate.cohort_id, Graduate.name)
            .limit(MAX_GRADUATES_LISTED)).all()
    by_cohort: dict[int | None, list] = {}
    for g in graduates:
        by_cohort.setdefault(g.cohort_id, []).append(g)
    cohorts = [{"id": cid, "name": name, "institution": inst, "join_code": code,
                "graduates": by_cohort.get(cid, [])} for cid, name, inst, code in rows]
    config = {"base": url_for("simulator.page"),
              "selected": request.args.get("graduate_id", type=int),
              "texts": {key: t(f"simulator.{key}") for key in SCRIPT_TEXTS}}
    return render_template("simulator.html", cohorts=cohorts,
                           loose=by_cohort.get(None, []), config=config,
                           media_kinds=list(MEDIA_SAMPLES))


@bp.get("/api/messages")
def messages() -> Response:
    """Messages of one graduate (or one phone number) with an id above ``after_id``."""
    settings = get_settings()
    after_id = request.args.get("after_id", default=0, type=int)
    with get_db().session() as session:
        graduate, phone = _who(session)
        if graduate is not None:
            where = or_(Message.graduate_id == graduate.id, Message.phone == graduate.phone)
        else:
            where = Message.phone == phone
        rows = session.scalars(select(Message).where(where, Message.id > after_id)
                               .order_by(Message.id).limit(MAX_MESSAGES_PER_POLL)).all()
        tz = settings.tz
        return jsonify({
            "graduate": None if graduate is None else {
                "id": graduate.id, "name": graduate.name, "phone": graduate.phone,
                "opted_out": graduate.opted_out, "active": graduate.active,
                "cohort": graduate.cohort.name if graduate.cohort else None,
                "cohort_id": graduate.cohort_id},
            "phone": phone,
            "messages": [{
                "id": m.id, "direction": m.direction, "kind": m.kind, "body": m.body,
                "status": m.status, "error_code": m.error_code,
                "kind_label": kind_label(m.kind), "status_label": status_label(m.status),
                "media_url": m.media_url, "media_type": m.media_type,
                "buttons": (m.meta or {}).get("buttons") if m.direction == "out" else None,
                "time": m.created_at.astimezone(tz).strftime("%H:%M"),
                "date": m.created_at.astimezone(tz).strftime(DATE_FORMAT),
            } for m in rows],
        })


@bp.post("/api/send")
def send() -> tuple[Response, int]:
    """Deliver a typed message as Twilio would, through the webhook's own handling."""
    settings = get_settings()
    data = request.get_json(silent=True) or request.form
    with get_db().session() as session:
        graduate, phone = _who(session, data)
        profile = graduate.name if graduate is not None else "Simulator"
    form = {
        "MessageSid": "SMsim" + uuid.uuid4().hex,
        "SmsMessageSid": "",
        "AccountSid": settings.twilio.account_sid,
        "From": to_whatsapp(phone),
        "To": settings.twilio.whatsapp_from or SANDBOX_SENDER,
        "Body": str(data.get("body") or ""),
        "NumMedia": "0",
        "NumSegments": "1",
        "ProfileName": profile,
        "WaId": phone.lstrip("+"),
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    if data.get("button"):  # a tapped quick-reply button, as WhatsApp sends it
        form.update(ButtonPayload=str(data.get("button")),
                    ButtonText=str(data.get("button_text") or data.get("button")))
    media = MEDIA_SAMPLES.get(str(data.get("media") or ""))
    if media is not None:
        form.update(NumMedia="1", MediaUrl0=media[0], MediaContentType0=media[1])
    answer = receive_form(form)
    if answer.status_code == 200:
        # A person is watching: handle the message now instead of at the next worker pass.
        handle_waiting(get_db(), settings)
    return jsonify({"ok": answer.status_code == 200, "status": answer.status_code,
                    "message_sid": form["MessageSid"]}), answer.status_code


@bp.post("/api/cohorts/<int:cohort_id>/checkin")
def start_checkin(cohort_id: int) -> Response:
    """Start a check-in round for the whole cohort now (quiet hours ignored: you are watching)."""
    from bot.checkins import start_round

    settings = get_settings()
    with get_db().session() as session:
        cohort = session.get(Cohort, cohort_id) or abort(404)
        round_ = start_round(session, settings, cohort, scheduled_for=utcnow(),
                             trigger="manual", ignore_quiet_hours=True)
        prompts = 0 if round_ is None else session.scalar(
            select(func.count(Message.id)).where(Message.round_id == round_.id))
        return jsonify({"started": round_ is not None, "cohort": cohort.name,
                        "round_id": round_.id if round_ is not None else None,
                        "prompts": prompts})


def _who(session, data=None) -> tuple[Graduate | None, str]:
    """The graduate (``graduate_id``) or bare phone number (``phone``) a request is about."""
    data = request.args if data is None else data
    graduate_id = data.get("graduate_id")
    if graduate_id:
        number = id_value(graduate_id)
        graduate = session.get(Graduate, number) if number is not None else None
        if graduate is None:
            abort(404, description=f"no graduate {graduate_id}")
        return graduate, graduate.phone
    try:
        phone = normalize_phone(str(data.get("phone") or ""))
    except PhoneError as exc:
        abort(400, description=f"phone: {exc}")
    graduate = session.scalar(select(Graduate).where(Graduate.phone == phone))
    return graduate, phone
