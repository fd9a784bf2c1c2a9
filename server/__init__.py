"""Agent Arena server: the Starlette app and the rooms it is built from.

- ``app.py``, ``state.py``, ``config.py``, ``health.py``: the app's plumbing: the lifespan that
  owns every resource, the resources the handlers reach, the settings, the health report.
- ``http/``: the HTTP and WebSocket face: the route table, the JSON API, the spectators', lobby
  and remote agents' sockets, tokens, names, sessions, rate limits, and the one table from
  errors to statuses and close codes.
- ``ladder/``: the rated ladder: its rules (rating, pairing), the scheduler, the rating task.
- ``matches/``: games, the match runner, seats, the spectator hub, replays, the match manager.
- ``sandbox/``: the validator, seat launching and isolation; ``sandbox/seat/`` is what runs
  inside a seat.
- ``cluster/``: a worker's side of the match queue: claiming matches, renewing their leases.
- ``storage/``: the storage interface, its SQLite and PostgreSQL implementations, and the match
  queue in PostgreSQL (claims, leases, fencing).
- ``stats/``: statistics for comparing bots (Elo, its interval, the sequential test), pure.
- ``web/``: the web pages; ``bots/``: the example bots.

Imports point down: ``app`` > ``http`` > ``ladder`` > ``matches`` > ``sandbox``, ``storage``
and ``protocol/`` (``tests/test_imports.py`` holds the floors). One process runs every room
by default (role ``all``). On PostgreSQL the app splits in two roles (``Settings.role``): a
front (``http/`` and ``ladder/``, which store matches) and a worker (``matches/``,
``sandbox/`` and ``cluster/``, which claim and run them); the match queue between them is the
matches table (``storage/_pg_queue.py``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
