"""The rated ladder: its rules (``rules``: rating a finished match, pairing agents, pure
functions), the scheduler that keeps its matches running (``scheduler``) and the task that
rates them as they finish (``ratings``).

``rules`` imports nothing of the server, since storage applies it inside its write transaction;
this package re-exports nothing, so importing ``rules`` does not pull in the scheduler.
"""
