"""``python -m client``: the ``arena`` command line."""

from client.cli import main

raise SystemExit(main())
