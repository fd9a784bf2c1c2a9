"""The client side of Agent Arena: the ``arena`` command line and the remote-agent SDK.

Importing this package is cheap: nothing here pulls in the server. The CLI imports server
parts (games, the match runner, the sandbox) lazily, inside the commands that run them.
"""

__all__: list[str] = []
