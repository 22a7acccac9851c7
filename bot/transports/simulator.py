"""The simulator transport: nothing leaves the machine.

The outbox row is the record of what was "sent"; the ``/simulator`` page reads the rows and
shows them as a phone would. A send is answered at once as delivered, since the simulated phone
has it the moment the row is marked.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from bot.transports import OutboundRequest, SendResult, fake_sid


class SimulatorTransport:
    name = "simulator"

    def send(self, req: OutboundRequest) -> SendResult:
        return SendResult(sid=fake_sid(), status="delivered")

    def find_sent(self, req: OutboundRequest, since: datetime, *,
                  exclude: Collection[str] = ()) -> SendResult | None:
        """No record beyond the outbox row: a send whose outcome is unknown did not happen."""
        return None
