"""One inbound message being handled: the session, the settings, the graduate and the text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.orm import Session

from bot.catalog import LANGUAGES, text
from bot.config import Settings
from bot.models import Conversation, Graduate, Message
from bot.outbox import enqueue

JOIN_FLOW = "join"
CHECKIN_FLOW = "checkin"


@dataclass
class Turn:
    """What every handler gets; ``say`` enqueues a catalog text as the reply."""

    session: Session
    settings: Settings
    graduate: Graduate
    text: str
    now: datetime
    conversation: Conversation | None = None
    inbound: Message | None = None  # the message being answered (consent history cites it)
    _batch: list[str] | None = field(default=None, repr=False)

    @property
    def language(self) -> str:
        lang = self.graduate.language
        return lang if lang in LANGUAGES else self.settings.app.language

    @property
    def today(self) -> date:
        """The date in the app's time zone (deadlines are local dates)."""
        return self.now.astimezone(self.settings.tz).date()

    @property
    def joining(self) -> bool:
        """The number sent GABUNG and has not given its name yet (the graduate is inactive)."""
        return self.conversation is not None and self.conversation.flow == JOIN_FLOW

    def say(self, key: str, *, kind: str = "reply", **values: object) -> Message | None:
        """Enqueue the catalog text ``key`` as a reply to this graduate."""
        return self.say_body(self.say_text(key, **values), kind=kind)

    def say_text(self, key: str, **values: object) -> str:
        """The catalog text ``key`` in the graduate's language (for replies built of parts)."""
        return text(self.language, key, **values)

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Replies said inside go out as one message, in order (an answer to a keyword and the
        open question asked again arrive together, and in that order, whatever the outbox's
        concurrency); other kinds (an opt-out confirmation, buttons) go out on their own."""
        if self._batch is not None:
            yield
            return
        self._batch = []
        try:
            yield
        finally:
            bodies, self._batch = self._batch, None
        if bodies:
            self.say_body("\n\n".join(bodies))

    def say_body(self, body: str, *, kind: str = "reply") -> Message | None:
        """Enqueue ``body`` (made of catalog texts) as a reply to this graduate."""
        if self._batch is not None and kind == "reply" and not self.joining:
            self._batch.append(body)
            return None
        if not self.joining:
            return enqueue(self.session, graduate=self.graduate, kind=kind, body=body)
        # A joining graduate stays inactive until named, and the outbox suppresses messages to
        # an inactive graduate: address the reply by phone only (``join`` files it under the
        # graduate once they are active).
        message = enqueue(self.session, phone=self.graduate.phone, kind=kind, body=body)
        if message is not None:
            message.cohort_id = self.graduate.cohort_id
        return message

    def end_conversation(self) -> None:
        """Forget where the graduate was (the row is deleted with this transaction)."""
        if self.conversation is not None:
            self.session.delete(self.conversation)
            self.conversation = None
