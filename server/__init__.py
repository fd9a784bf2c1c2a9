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
- ``storage/``: the storage interface and its SQLite implementation.
- ``web/``: the web pages; ``bots/``: the example bots.

Imports point down: ``app`` > ``http`` > ``ladder`` > ``matches`` > ``sandbox``, ``storage``
and ``protocol/`` (``tests/test_imports.py`` holds the floors). One process runs every room
today. A cluster splits the app in two roles beside ``app.py``: a front (``http/`` and
``ladder/``, which start matches) and a worker (``matches/`` and ``sandbox/``, which run them);
the match queue between them gets a room of its own, on the floor of ``matches/``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
