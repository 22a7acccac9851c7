"""Check-in schedules: standard crontab lines read the way crontab reads them."""

from __future__ import annotations

import re
from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_trigger(cron: str, tz: tzinfo | str) -> CronTrigger:
    """A CronTrigger for a standard crontab line (minute hour day month weekday).

    Unlike APScheduler 3's ``CronTrigger.from_crontab``, weekday numbers mean what they mean in
    crontab: "0 9 * * 1" is Mondays at 09:00, not Tuesdays. Raises ValueError on a bad line.
    (One difference stays: with both a day of month and a weekday, both must match, where
    crontab takes either.)
    """
    values = cron.split()
    if len(values) != 5:
        raise ValueError(f"a schedule has 5 fields (minute hour day month weekday), "
                         f"not {len(values)}: {cron!r}")
    minute, hour, day, month, weekday = values
    return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                       day_of_week=_crontab_weekdays(weekday), timezone=tz)


def _crontab_weekdays(field: str) -> str:
    if field in ("*", "?"):
        return "*"
    names: list[str] = []
    for part in field.split(","):
        base, slash, step_text = part.partition("/")
        if base == "*":
            low, high = 0, 6
        elif base.isdigit():
            low = int(base)
            high = 6 if slash else low  # "1/2": from Monday on, every other day
        elif re.fullmatch(r"\d+-\d+", base):
            low, high = (int(n) for n in base.split("-"))
        else:
            names.append(part.lower())  # names ("mon-fri") mean the same to both
            continue
        step = int(step_text) if step_text.isdigit() else (None if slash else 1)
        if step is None or step < 1 or low > high or high > 7:
            raise ValueError(f"day of week {part!r} is not valid (0-7, 0 and 7 are Sunday)")
        names.extend(_CRON_DAYS[n] for n in range(low, high + 1, step))
    return ",".join(dict.fromkeys(names))
