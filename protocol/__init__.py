"""Wire messages shared by the arena server and its clients."""

from .codec import (
    MAX_FRAME_BYTES,
    decode_agent_client,
    decode_agent_server,
    decode_body,
    decode_json,
    decode_lobby,
    decode_seat,
    decode_spectator,
    encode,
    encode_json,
)
from .errors import ArenaError, ProtocolError
from .messages import PROTOCOL_VERSION
from .status import FaultLimit, SeatStatus

__all__ = [
    "MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "ArenaError",
    "FaultLimit",
    "ProtocolError",
    "SeatStatus",
    "decode_agent_client",
    "decode_agent_server",
    "decode_body",
    "decode_json",
    "decode_lobby",
    "decode_seat",
    "decode_spectator",
    "encode",
    "encode_json",
]
