"""The HTTP and WebSocket face of the arena: the route table, the JSON API, the spectators' and
the remote agents' sockets, and what they need per request (accounts' tokens and names,
sessions, rate limits).

Nothing here runs a match: the handlers ask the match manager and storage, reached through
``server.state``. Modules are imported by name (``server.http.api``); this package re-exports
nothing.
"""
