"""The cluster (several processes around one PostgreSQL database), on the floor of ``matches/``:
``worker.py`` is a worker's side of the match queue, claiming matches and holding their
leases (the queue itself, its SQL and its fencing, is ``server/storage/_pg_queue.py``);
``relay.py`` is a front's side of the matches the workers run, live for its spectators;
``agents.py`` plays remote agents' seats between the worker that runs a match and the front
that holds the agent's connection; ``leader.py`` elects the one process that runs the ladder."""

from .agents import AgentDesk, SeatExchange
from .leader import Leadership
from .relay import Relay
from .worker import QueueWorker

__all__ = ["AgentDesk", "Leadership", "QueueWorker", "Relay", "SeatExchange"]
