"""Conversation handlers: what Kabar answers to each inbound message.

``router.handle_inbound`` is the entry point (the webhook and the simulator call it); it hands
keywords to ``keywords``, an open check-in to ``checkin`` (a table of states) and a number that
is joining a cohort to ``join``. Handlers change rows and enqueue replies; they never send.
"""
