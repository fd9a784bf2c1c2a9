"""What the lobby hears when a match ends: ``match_ended``, then one ``rating_changed`` per seat
whose rating it moved, in seat order.

A rated match is rated in the transaction that stores its result, so its end and its rating
changes are known together and go out together, the end first. The process that ran the match
publishes them on its lobby (``manager.py``); in a cluster each front's relay publishes them
for the matches other processes ran, read back from the database (``server/cluster/relay.py``),
and the backfill rater's late ratings go out alone (``server/ladder/ratings.py``). All of them
build the frames here, so every lobby hears the same frames in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

from protocol.messages import JSON, LobbyMsg, MatchEnded, RatingChanged
from server.storage import RatedMatch, RatingChange

__all__ = ["end_frames", "rating_frame", "rating_frames"]


def rating_frame(match_id: int, change: RatingChange) -> RatingChanged:
    """The lobby frame announcing one seat's new rating after match ``match_id``."""
    after = change.after
    return RatingChanged(
        agent_id=change.agent_id, game=after.game, rating=after.rating, previous=change.before.rating,
        name=change.name, owner=change.owner, match_id=match_id, mu=after.mu, sigma=after.sigma,
        rated_matches=after.matches,
    )


def rating_frames(match: RatedMatch) -> list[RatingChanged]:
    """The frames of a rated match's changes, one per seat whose rating moved, in seat order."""
    return [rating_frame(match.match_id, change) for change in match.changes]


def end_frames(document: dict[str, JSON], changes: Sequence[RatingChange] = ()) -> list[LobbyMsg]:
    """The frames of a match's end: ``match_ended`` with its ``document``, then its rating ``changes``."""
    match_id = document["id"]
    assert isinstance(match_id, int)
    return [MatchEnded(match=document), *(rating_frame(match_id, change) for change in changes)]
