"""``python -m scripts.bench``: run the benchmark suite (see ``suite.py``)."""

from .suite import main

main()
