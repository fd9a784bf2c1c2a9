"""Statistics for comparing bots: is a candidate bot B stronger than a baseline bot A, judged
from the games they played against each other. ``sprt`` holds the Elo estimate, its interval,
the likelihood of superiority and the sequential probability ratio test (SPRT) that chess
engine testers (fishtest, OpenBench) run on game pairs; it is pure (no I/O) and uses only the
standard library. This package re-exports nothing: import from ``server.stats.sprt``.
"""
