"""What runs inside a seat: exactly the files of this folder, and what both sides agree on.

Theory of operation. Every ``.py`` file of this folder, this one included, and nothing else of
the project, is copied into a seat's read-only filesystem view under :data:`SANDBOX_DIR`
(``server/sandbox/view.py`` lists the folder; nothing names its files one by one) and runs
there under the bot's uid:

* ``bot_runtime.py``, a fresh seat's program: the protocol loop, the limits it applies to
  itself, the bot's loading; ``_native.py``, its few libc calls (``prctl``, seccomp);
* ``zygote.py``, the fork server's program: it loads the runtime and forks seats from it;
* ``restricted.py`` and the modules it imports (``_guards.py``...): layer 2, the restricted
  runtime the bot's code is compiled and run by.

The server launches these programs (``fresh.py``, ``forkserver.py``) and imports some of their
names (this module's constants, layer 2's allow-list for the validator), never the other way:
this code runs under the bot interpreter, ``python3 -I -S``, with the standard library only
(``tests/sandbox/test_seat_folder.py`` parses every module to hold that).

Loading. ``-I`` puts no directory on ``sys.path``: in a seat, ``bot_runtime.py`` makes this
folder, wherever it is (the view's ``/arena``; without the view, the project's directory or a
readable copy of it, ``view.readable_runtime``), the package ``arena_sandbox`` and loads each
module from its source by path when it is first imported (``bot_runtime.SeatFolder``): the
modules' own relative imports give the order. In the server's process the same files are the
package ``server.sandbox.seat``, imported the ordinary way.

This module is the contract between the two sides: the constants below live here once.
"""

__all__ = ["BOT_FILENAME", "BOT_MODULE", "NOBODY", "RUNTIME", "SANDBOX_DIR", "SECCOMP_OPTION", "ZYGOTE"]

SANDBOX_DIR = "/arena"  # where the view holds this folder's files, each under its own name
RUNTIME = "bot_runtime.py"  # a fresh seat's program
ZYGOTE = "zygote.py"  # the fork server's program
SECCOMP_OPTION = "--seccomp"  # the runtime's one option: the filter it installs on itself once loaded (base64 BPF)
NOBODY = 65534  # the uid and gid a seat runs as, and that bubblewrap starts as when the server is root
BOT_MODULE = "bot"  # the bot's module name: its classes have this __module__, no other class can
BOT_FILENAME = "bot.py"  # the bot's code's file name in tracebacks (it never is a file)
