"""Settings: one TOML file plus environment overrides, validated once, immutable afterwards.

Where the file comes from, first match wins: an explicit path (``--config``), the
``KABAR_CONFIG`` environment variable, ``./config.toml``, else the built-in defaults (the
embedded default: SQLite in the working directory and the simulator transport).

Secrets may come from the environment instead of the file: ``KABAR_SECRET_KEY``,
``KABAR_DATABASE_URL``, ``KABAR_DATABASE_READ_URL``, ``TWILIO_ACCOUNT_SID``,
``TWILIO_AUTH_TOKEN``. Every unknown key or bad value is refused with a message that names the
file and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TRANSPORTS = ("twilio", "simulator", "console")
LANGUAGES = ("id", "en")
TEMPLATE_KINDS = ("checkin", "reminder", "job_opening", "announcement", "status_buttons")
DEFAULT_TWILIO_API = "https://api.twilio.com"
# dispatch.concurrency: requests one dispatcher keeps in flight at most.
MAX_CONCURRENCY = 256


# Image types office.logo_path may name, and how they are served.
LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".svg": "image/svg+xml", ".gif": "image/gif", ".webp": "image/webp"}


class ConfigError(ValueError):
    """A configuration key is unknown, missing or has a value Kabar cannot use."""


@dataclass(frozen=True)
class AppSettings:
    secret_key: str = ""
    public_url: str = "http://127.0.0.1:5000"
    timezone: str = "Asia/Jakarta"
    language: str = "id"
    # A console session ends after this many minutes without a request.
    session_idle_minutes: int = 120
    # How many reverse proxies in front of Kabar set X-Forwarded-For/-Proto/-Host (0: none;
    # the client address is then the connection's). Wrong counts let clients pick their address.
    trusted_proxies: int = 0


@dataclass(frozen=True)
class JoiningSettings:
    # Self-joins (GABUNG) wait for staff approval in the console; false accepts them at once.
    require_approval: bool = True
    # GABUNG messages one number may send per day; later ones are answered with nothing new.
    max_attempts_per_day: int = 5


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///kabar.db"
    # A PostgreSQL streaming replica the console's pages read from ("" for none).
    read_url: str = ""
    replica_max_lag_seconds: float = 10.0
    primary_after_write_seconds: float = 20.0


@dataclass(frozen=True)
class TransportSettings:
    kind: str = "simulator"


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str = ""
    auth_token: str = ""
    whatsapp_from: str = ""
    messaging_service_sid: str = ""
    api_base_url: str = DEFAULT_TWILIO_API
    validate_signatures: bool = True
    templates: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class SchedulerSettings:
    default_checkin: str = "0 9 1 * *"
    quiet_hours: str = "21:00-07:00"
    reminder_after_hours: float = 48.0
    checkin_expires_after_days: float = 7.0
    run_dispatcher: bool = True
    reconcile_every_seconds: int = 60


@dataclass(frozen=True)
class DispatchSettings:
    rate_per_second: float = 10.0
    max_attempts: int = 5
    batch_size: int = 50
    poll_interval_seconds: float = 0.5
    claim_lease_seconds: float = 120.0
    concurrency: int = 16


@dataclass(frozen=True)
class UnderstandingSettings:
    # Vocabulary files of this deployment, read after Kabar's own (bot/vocabulary/*.toml);
    # a relative path is relative to the configuration file's folder.
    vocabulary: tuple[str, ...] = ()


@dataclass(frozen=True)
class OfficeSettings:
    """The office the printed reports (tracer report) are headed with."""

    name: str = ""
    logo_path: str = ""


@dataclass(frozen=True)
class RosterSettings:
    """Limits on reading a roster file (``bot.rosterfile``)."""

    max_rows: int = 50_000
    max_columns: int = 60
    max_cell_chars: int = 1_000
    max_unzipped_mb: int = 50
    max_problems_shown: int = 200


@dataclass(frozen=True)
class PrivacySettings:
    """How long personal data is kept (``bot.privacy``); 0 keeps it without a limit."""

    message_body_days: int = 730
    unknown_number_days: int = 30


@dataclass(frozen=True)
class Settings:
    app: AppSettings = field(default_factory=AppSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    transport: TransportSettings = field(default_factory=TransportSettings)
    twilio: TwilioSettings = field(default_factory=TwilioSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    understanding: UnderstandingSettings = field(default_factory=UnderstandingSettings)
    office: OfficeSettings = field(default_factory=OfficeSettings)
    joining: JoiningSettings = field(default_factory=JoiningSettings)
    roster: RosterSettings = field(default_factory=RosterSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    source: str = "built-in defaults"
    # False when neither the file nor KABAR_TRANSPORT chose transport.kind: the web app then
    # refuses to start rather than serve the simulator to anyone (``create_app``).
    transport_chosen: bool = True

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.app.timezone)

    @property
    def quiet_window(self) -> tuple[int, int] | None:
        """Quiet hours as (start, end) minutes after midnight, or None when disabled."""
        return parse_quiet_hours(self.scheduler.quiet_hours)

    def with_overrides(self, **sections: Mapping[str, Any]) -> Settings:
        """A copy with some keys replaced, validated like a file (used by tests and the demo)."""
        raw = {name: {f.name: getattr(getattr(self, name), f.name)
                      for f in fields(getattr(self, name))}
               for name in _SECTIONS}
        for name, values in sections.items():
            if name not in _SECTIONS:
                raise ConfigError(f"unknown configuration section [{name}]")
            raw[name] = {**raw[name], **values}
        chosen = self.transport_chosen or "kind" in sections.get("transport", {})
        return _build(raw, self.source, chosen)


_SECTIONS: dict[str, type] = {
    "app": AppSettings,
    "database": DatabaseSettings,
    "transport": TransportSettings,
    "twilio": TwilioSettings,
    "scheduler": SchedulerSettings,
    "dispatch": DispatchSettings,
    "understanding": UnderstandingSettings,
    "office": OfficeSettings,
    "joining": JoiningSettings,
    "roster": RosterSettings,
    "privacy": PrivacySettings,
}

_ENV_OVERRIDES = {
    "KABAR_SECRET_KEY": ("app", "secret_key"),
    "KABAR_PUBLIC_URL": ("app", "public_url"),
    "KABAR_DATABASE_URL": ("database", "url"),
    "KABAR_DATABASE_READ_URL": ("database", "read_url"),
    "KABAR_TRANSPORT": ("transport", "kind"),
    "TWILIO_ACCOUNT_SID": ("twilio", "account_sid"),
    "TWILIO_AUTH_TOKEN": ("twilio", "auth_token"),
}


def load_settings(path: str | os.PathLike | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the configuration; raise ConfigError naming the bad key."""
    environ = os.environ if environ is None else environ
    chosen = path or environ.get("KABAR_CONFIG") or None
    if chosen is None and Path("config.toml").is_file():
        chosen = "config.toml"
    raw: dict[str, dict[str, Any]] = {}
    source = "built-in defaults"
    if chosen is not None:
        file = Path(chosen)
        source = str(file)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{file}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        for name, values in data.items():
            if name not in _SECTIONS:
                raise ConfigError(f"{file}: unknown section [{name}] "
                                  f"(known: {', '.join(_SECTIONS)})")
            if not isinstance(values, dict):
                raise ConfigError(f"{file}: [{name}] must be a table of keys")
            raw[name] = dict(values)
    for var, (section, key) in _ENV_OVERRIDES.items():
        if environ.get(var):
            raw.setdefault(section, {})[key] = environ[var]
    return _build(raw, source, "kind" in raw.get("transport", {}))


def _build(raw: Mapping[str, Mapping[str, Any]], source: str,
           transport_chosen: bool = True) -> Settings:
    sections = {}
    for name, cls in _SECTIONS.items():
        values = dict(raw.get(name, {}))
        known = {f.name: f for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"{source}: unknown key {name}.{key} "
                                  f"(known: {', '.join(known)})")
        default = cls()
        coerced = {}
        for key, value in values.items():
            coerced[key] = _coerce(source, f"{name}.{key}", value, getattr(default, key))
        sections[name] = replace(default, **coerced)
    if sections["understanding"].vocabulary and Path(source).is_file():
        folder = Path(source).resolve().parent
        sections["understanding"] = replace(sections["understanding"], vocabulary=tuple(
            str(folder / p) for p in sections["understanding"].vocabulary))
    settings = Settings(**sections, source=source, transport_chosen=transport_chosen)
    _validate(settings)
    return settings


def _coerce(source: str, key: str, value: Any, default: Any) -> Any:
    where = f"{source}: {key}"
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return value
    if isinstance(default, int | float) and not isinstance(default, bool):
        try:
            number = type(default)(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, not {value!r}") from None
        if number < 0:
            raise ConfigError(f"{where} must not be negative, not {value!r}")
        return number
    if isinstance(default, tuple):
        if isinstance(value, str) or not isinstance(value, list | tuple) or \
                not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, not {value!r}")
        return tuple(value)
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table")
        return MappingProxyType({str(k): str(v) for k, v in value.items()})
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {value!r}")
    return value


_QUIET = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


TRANSPORT_NOT_CHOSEN = (
    "transport.kind is not set: the web app will not start without it. Set [transport] "
    'kind = "twilio" in the configuration file (or KABAR_TRANSPORT=twilio) for WhatsApp; '
    '"simulator" serves the simulator to signed-in staff only; `kabar demo` tries Kabar on '
    "this machine without any setting")


def parse_quiet_hours(text: str) -> tuple[int, int] | None:
    """'21:00-07:00' -> (1260, 420); '' -> None. Raises ValueError on anything else."""
    text = text.replace(" ", "")
    if not text:
        return None
    match = _QUIET.match(text)
    if not match:
        raise ValueError(f"quiet hours must look like 21:00-07:00, not {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"quiet hours must use times 00:00-23:59, not {text!r}")
    return h1 * 60 + m1, h2 * 60 + m2


def _validate(s: Settings) -> None:
    src = s.source
    try:
        ZoneInfo(s.app.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{src}: app.timezone {s.app.timezone!r} is not a known time zone "
                          "(e.g. Asia/Jakarta)") from None
    if s.app.language not in LANGUAGES:
        raise ConfigError(f"{src}: app.language must be one of {', '.join(LANGUAGES)}")
    if not re.match(r"^https?://[^/\s]+", s.app.public_url):
        raise ConfigError(f"{src}: app.public_url must be an http(s) URL, "
                          f"not {s.app.public_url!r}")
    if "://" not in s.database.url:
        raise ConfigError(f"{src}: database.url must be a SQLAlchemy URL such as "
                          "sqlite:///kabar.db or postgresql+psycopg://user@host/db")
    if s.database.read_url:
        if "://" not in s.database.read_url:
            raise ConfigError(f"{src}: database.read_url must be a SQLAlchemy URL such as "
                              "postgresql+psycopg://user@replica-host/db")
        if not (s.database.url.startswith("postgresql")
                and s.database.read_url.startswith("postgresql")):
            raise ConfigError(f"{src}: database.read_url (a read replica) needs PostgreSQL "
                              "for both database.url and database.read_url; leave it empty "
                              "with SQLite")
    if s.database.replica_max_lag_seconds <= 0:
        raise ConfigError(f"{src}: database.replica_max_lag_seconds must be above 0")
    if s.database.primary_after_write_seconds < s.database.replica_max_lag_seconds + 10:
        # A browser that saved something must not be sent to a replica that may not have it
        # yet: up to the lag allowed, plus how old a look at the replica may be (bot.db).
        raise ConfigError(f"{src}: database.primary_after_write_seconds must be at least "
                          "database.replica_max_lag_seconds + 10 "
                          f"({s.database.replica_max_lag_seconds + 10:g})")
    if s.transport.kind not in TRANSPORTS:
        raise ConfigError(f"{src}: transport.kind must be one of {', '.join(TRANSPORTS)}, "
                          f"not {s.transport.kind!r}")
    for kind in s.twilio.templates:
        if kind not in TEMPLATE_KINDS:
            raise ConfigError(f"{src}: unknown key twilio.templates.{kind} "
                              f"(known: {', '.join(TEMPLATE_KINDS)})")
    for kind, sid in s.twilio.templates.items():
        if sid and not sid.startswith("HX"):
            raise ConfigError(f"{src}: twilio.templates.{kind} must be a Content SID (HX...)")
    if s.understanding.vocabulary:
        from bot.understand import VocabularyError, load_vocabulary
        try:
            load_vocabulary(s.understanding.vocabulary)
        except VocabularyError as exc:
            raise ConfigError(f"{src}: understanding.vocabulary: {exc}") from None
    if s.transport.kind == "twilio":
        missing = [k for k in ("account_sid", "auth_token") if not getattr(s.twilio, k)]
        if not (s.twilio.whatsapp_from or s.twilio.messaging_service_sid):
            missing.append("whatsapp_from or messaging_service_sid")
        if missing:
            raise ConfigError(f"{src}: transport.kind is twilio but "
                              + ", ".join(f"twilio.{m}" for m in missing) + " is not set")
        if not s.app.secret_key:
            raise ConfigError(f"{src}: app.secret_key (or KABAR_SECRET_KEY) must be set "
                              "when transport.kind is twilio")
        host = re.sub(r"^https?://", "", s.app.public_url).split("/")[0].split(":")[0]
        if host in ("127.0.0.1", "localhost", "0.0.0.0", "::1", "[::1]"):
            raise ConfigError(f"{src}: app.public_url is {s.app.public_url!r}, which Twilio "
                              "cannot reach; set it to the public https address configured "
                              "as the webhook in the Twilio console (signatures are checked "
                              "against it)")
    if not re.match(r"^https?://", s.twilio.api_base_url):
        raise ConfigError(f"{src}: twilio.api_base_url must be an http(s) URL")
    try:
        parse_quiet_hours(s.scheduler.quiet_hours)
    except ValueError as exc:
        raise ConfigError(f"{src}: scheduler.quiet_hours: {exc}") from None
    try:
        from bot.schedules import cron_trigger

        cron_trigger(s.scheduler.default_checkin, s.app.timezone)
    except ValueError as exc:
        raise ConfigError(f"{src}: scheduler.default_checkin is not a cron expression "
                          f"(minute hour day month weekday): {exc}") from None
    if s.dispatch.rate_per_second <= 0:
        raise ConfigError(f"{src}: dispatch.rate_per_second must be above 0")
    if not 1 <= s.dispatch.concurrency <= MAX_CONCURRENCY:
        raise ConfigError(f"{src}: dispatch.concurrency must be a whole number from 1 to "
                          f"{MAX_CONCURRENCY} (requests in flight per dispatcher), not "
                          f"{s.dispatch.concurrency!r}")
    if s.dispatch.max_attempts < 1:
        raise ConfigError(f"{src}: dispatch.max_attempts must be at least 1")
    if s.app.session_idle_minutes < 1:
        raise ConfigError(f"{src}: app.session_idle_minutes must be at least 1")
    if s.joining.max_attempts_per_day < 1:
        raise ConfigError(f"{src}: joining.max_attempts_per_day must be at least 1")
    if s.dispatch.claim_lease_seconds <= 0:
        raise ConfigError(f"{src}: dispatch.claim_lease_seconds must be above 0")
    if s.office.logo_path and Path(s.office.logo_path).suffix.lower() not in LOGO_TYPES:
        raise ConfigError(f"{src}: office.logo_path must be a "
                          f"{', '.join(sorted(LOGO_TYPES))} image, not {s.office.logo_path!r}")
    for key in ("max_rows", "max_columns", "max_cell_chars", "max_unzipped_mb",
                "max_problems_shown"):
        if getattr(s.roster, key) < 1:
            raise ConfigError(f"{src}: roster.{key} must be at least 1")
