"""The public JSON documents of a stored match: the match itself (``GET /api/matches/{id}``,
the spectators' ``snapshot``), its seats, and its result (the ``end`` frame). The match
manager publishes them to the live feed, and the HTTP and WebSocket handlers send the same.
"""

from __future__ import annotations

from protocol.messages import JSON
from server.storage import MatchRecord, SeatResult

__all__ = ["match_document", "result_document", "seat_document"]


def match_document(record: MatchRecord) -> dict[str, JSON]:
    """The public JSON form of a match (``GET /api/matches/{id}``)."""
    return {
        "id": record.id,
        "game": record.game,
        "status": record.status.value,
        "reason": record.reason,
        "config": record.config,
        "seed": record.seed,
        "rules_version": record.rules_version,
        "seats": [seat_document(s) for s in record.seats],
        "steps": record.steps,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "tags": record.tags,
        "rated": record.rated,
        "worker": record.worker,  # the worker that runs or ran it; None while pending
    }


def seat_document(seat: SeatResult) -> dict[str, JSON]:
    return {
        "agent_id": seat.agent_id,
        "name": seat.agent_name,
        "owner": seat.owner,
        "version": seat.version,
        "status": seat.status,
        "reward": seat.reward,
        "reason": seat.reason,
    }


def result_document(record: MatchRecord) -> dict[str, JSON]:
    """The ``result`` of an ``end`` frame: the seats as in a replay, and the winner if any."""
    rewards = [s.reward for s in record.seats]
    best = max((r for r in rewards if r is not None), default=None)
    leaders = [i for i, r in enumerate(rewards) if r is not None and r == best]
    return {
        "match_id": record.id,
        "status": record.status.value,
        "reason": record.reason,
        "seats": [seat_document(s) for s in record.seats],
        "steps": record.steps,
        "winner": leaders[0] if len(leaders) == 1 and len(set(rewards)) > 1 else None,
    }
