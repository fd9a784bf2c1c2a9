"""The bot runtime: the trusted code that runs first inside a seat's process.

Theory of operation. The match runner starts ``python3 -I -S bot_runtime.py`` with three
pipes. The runtime

1. moves the protocol channel off file descriptor 1 (to a private duplicate) and points
   fd 1 at fd 2, so whatever the bot prints, from Python or C, lands in the seat's log and
   can never be mistaken for a protocol message;
2. reads one ``init`` line (the bot's code, its seat, the match seed, the configuration and
   the limits), applies the limits to itself, gives up root if it has it, installs the
   seccomp filter given with ``--seccomp`` on its command line (the sandbox's list without
   ``execve``: the bot can exec nothing, the interpreter without this runtime included), and
   seeds ``random`` from the match seed and the seat;
3. compiles and runs the bot's module, finds ``agent`` (or the last top-level function),
   answers ``ready``, then answers every ``act`` line with one ``action`` line.

:func:`serve` reads as those steps, one function each.

Unless the limits turn it off (a test-only switch), the bot's module is compiled and run by
the restricted runtime (``restricted.py`` and the modules it imports: layer 2, loaded by path
from this directory): checked syntax, whitelisted builtins and modules only. It fails closed:
without those files no bot runs.

When the limits allow numpy (the operator's opt-in), the runtime imports it before the bot's
code runs (:func:`enable_numpy`: ``-S`` left every site directory off ``sys.path``, and only
the one holding numpy joins it), seeds numpy's global generator from the match seed and the seat
as it seeds ``random``, and sends numpy's scalars and arrays in an action as plain JSON values.

A seat forked by the fork server (``zygote.py``) runs the same code from step 2 on: the
zygote loaded this module and layer 2 once, and the forked seat applied its limits and its
seccomp filter before ``init`` (``serve(..., applied_limits=...)``), having run the load path
once on a sample bot (:func:`warm_up`) while it waited in the pool.

It uses the standard library and this folder only: it runs under the bot interpreter, not the
server's environment. Run by path (a seat), it first makes its folder a package
(:class:`SeatFolder`, PEP 366) so that it imports its neighbours as it does in the server's
package. One JSON object per line in both directions.
"""

from __future__ import annotations

import ast
import base64
import importlib
import inspect
import json
import linecache
import os
import random
import resource
import sys
import time
import traceback
import types
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from typing import Any, BinaryIO

SEAT_PACKAGE = "arena_sandbox"  # this folder's name as a package in a seat's process


class SeatFolder:
    """This file's folder as the package ``arena_sandbox``, for a process that runs the file by path.

    ``python -I -S`` puts no directory on ``sys.path``. On ``sys.meta_path``, this finds the
    package (``__init__.py``) and its modules (``NAME.py``) in the folder that holds this file,
    wherever it is, and compiles each from its source (no bytecode cache is read or written):
    what a module imports relatively is loaded when it does, so no list of modules or of their
    order is kept here. Modules are read when first imported: layer 2's files before the runtime
    gives root up (:func:`load_layer_2`), since without the view the folder may be one only root
    can read.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        package, _, module = name.rpartition(".")
        if name == SEAT_PACKAGE:
            module = "__init__"
        elif package != SEAT_PACKAGE or not module.isidentifier():
            return None
        origin = os.path.join(self.directory, f"{module}.py")
        # This object is the loader by protocol (create_module, exec_module): subclassing
        # importlib.abc.Loader would cost every seat an import of some 20 ms.
        return ModuleSpec(name, self, origin=origin, is_package=name == SEAT_PACKAGE)  # type: ignore[arg-type]

    def create_module(self, spec: ModuleSpec) -> None:
        return None  # an ordinary module

    def exec_module(self, module: types.ModuleType) -> None:
        """Run the module's source in it.

        Raises:
            OSError: the file is missing or unreadable (no bot runs then: the caller's to report).
        """
        assert module.__spec__ is not None and module.__spec__.origin is not None
        path = module.__spec__.origin
        with open(path, "rb") as file:
            source = file.read()
        module.__file__ = path
        exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)


def enter_seat_folder() -> str:
    """Make this file's folder the package ``arena_sandbox`` (once per process): its name."""
    if SEAT_PACKAGE not in sys.modules:
        sys.meta_path.append(SeatFolder(os.path.dirname(os.path.abspath(__file__))))
        importlib.import_module(SEAT_PACKAGE)
    return SEAT_PACKAGE


if not __package__:  # run by path (a seat, the zygote): its relative imports below resolve in the folder's package
    __package__ = enter_seat_folder()

# After the package exists: these imports are why it is made.
from . import BOT_FILENAME, BOT_MODULE, NOBODY, SECCOMP_OPTION  # noqa: E402
from ._native import install_seccomp, native  # noqa: E402
from ._numpy_support import NUMPY_IMPORTS, enable_numpy, plain, seed_numpy  # noqa: E402

__all__ = [
    "NUMPY_IMPORTS", "SEAT_PACKAGE", "Channel", "SeatFolder", "Struct", "apply_limits", "arity", "enable_numpy",
    "enter_seat_folder", "find_agent", "load_bot", "load_restricted", "main", "native", "open_channel", "serve",
    "warm_up",
]  # fmt: skip


class Struct(dict[str, Any]):
    """A dict that also allows attribute access, as Kaggle's observations do."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _struct(value: dict[str, Any]) -> Struct:
    return Struct({k: _struct(v) if isinstance(v, dict) else v for k, v in value.items()})


def apply_limits(limits: dict[str, Any]) -> None:
    """Lower this process's own limits; nothing later in the process can raise them again."""
    cpu_s = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    memory = int(limits["memory_mb"]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits["open_files"]),) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.getuid() == 0:
        # RLIMIT_NPROC does not bind root: become an unprivileged user first.
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def load_restricted() -> Any:
    """The restricted runtime's module (layer 2), with the modules it imports; loaded once per process.

    Raises:
        OSError: one of its files is missing or unreadable.
    """
    return importlib.import_module(f"{__package__}.restricted")


def load_bot(code: str, limits: dict[str, Any], *, is_sample: bool = False) -> tuple[ast.Module, dict[str, Any]]:
    """Compile and run the bot's module (restricted unless the limits say otherwise): its tree and globals.

    The globals are those of a module registered as ``bot``, as ``dataclasses`` expects of a
    class's module (it looks string annotations up there). Before a real bot's module runs (not
    the sample ``is_sample`` bot of :func:`warm_up`), layer 2 arms its check of the source the
    standard library generates, for the rest of the process.
    """
    module = types.ModuleType(BOT_MODULE)
    namespace = module.__dict__
    if limits.get("restricted", True):
        # The observation and configuration are plain dicts with attribute access: the bot may set their entries.
        environment = load_restricted().Environment(allow_numpy=bool(limits.get("allow_numpy", False)),
                                                    open_attributes={Struct: None})
        tree, code_object = environment.compile(code, BOT_FILENAME)
        namespace["__builtins__"] = environment.builtins
        if not is_sample:
            environment.arm()
    else:
        tree = ast.parse(code, BOT_FILENAME)
        # dont_inherit: the bot gets none of this file's __future__ imports (string annotations).
        code_object = compile(tree, BOT_FILENAME, "exec", dont_inherit=True)
    sys.modules[BOT_MODULE] = module
    exec(code_object, namespace)
    return tree, namespace


def find_agent(namespace: dict[str, Any], tree: ast.Module) -> Callable[..., Any] | None:
    """``agent`` if the module defines it, else its last top-level function (Kaggle's rule)."""
    candidate = namespace.get("agent")
    if callable(candidate):
        return candidate  # type: ignore[no-any-return]
    names = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    for name in reversed(names):
        candidate = namespace.get(name)
        if callable(candidate):
            return candidate  # type: ignore[no-any-return]
    return None


def arity(fn: Callable[..., Any]) -> int:
    """How many of (observation, configuration) to pass: Kaggle bots take 0, 1 or 2."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return min(len(positional), 2)


def bot_traceback(exc: BaseException) -> str:
    """The traceback limited to frames of the bot's own file, then the exception line."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == BOT_FILENAME]
    lines = traceback.format_list(frames)
    # The full ending, with a syntax error's source line and caret (the reason has one line).
    ending = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return "".join(["Traceback (most recent call last):\n", *lines, ending, "\n"])


def last_line(exc: BaseException) -> str:
    """The exception as its traceback ends, ``ValueError: boom``, on one line for a syntax error."""
    if isinstance(exc, SyntaxError):
        # format_exception_only shows the source line and a caret over several lines; a
        # reason is one line: "SyntaxError: expected ':' (bot.py, line 2)".
        return f"{type(exc).__name__}: {exc}"
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def safe_repr(value: Any) -> str:
    """``repr(value)`` cut to 200 characters, or its type when even repr fails."""
    try:
        return f"{value!r:.200}"
    except Exception:  # a huge int, a too-deep nest, a bot class whose __repr__ raises
        return f"<{type(value).__name__} object>"


class Channel:
    """The protocol pipe: one JSON object per line."""

    def __init__(self, reader: BinaryIO, writer: BinaryIO) -> None:
        self.reader = reader
        self.writer = writer

    def receive(self) -> dict[str, Any] | None:
        line = self.reader.readline()
        if not line:
            return None
        msg: dict[str, Any] = json.loads(line)
        return msg

    def send(self, msg: dict[str, Any]) -> None:
        self.writer.write(json.dumps(msg, separators=(",", ":"), default=plain).encode() + b"\n")
        self.writer.flush()


def fail(channel: Channel, kind: str, exc: BaseException | str, step: int | None = None) -> None:
    if isinstance(exc, BaseException):
        sys.stderr.write(bot_traceback(exc))
        message = last_line(exc)
    else:
        sys.stderr.write(exc + "\n")
        message = exc
    sys.stderr.flush()
    channel.send({"type": "error", "kind": kind, "message": message, "step": step})


WARM_UP_BOT = """
import random

class Memo:
    def __init__(self):
        self.seen = []

def agent(observation, configuration):
    return random.choice([c for c in range(configuration.columns) if observation.board[c] == 0])
"""


def warm_up(limits: dict[str, Any]) -> None:
    """Run the load and move path once on a sample bot, in a namespace thrown away after.

    The fork server's zygote runs this once before it forks seats (lazy caches of ``ast``,
    ``inspect``, ``json``, the restricted runtime's proxies), and each forked seat once more while
    it waits in the pool: pages it writes to are copied now, not after its bot's ``init`` arrived.
    """
    tree, namespace = load_bot(WARM_UP_BOT, limits, is_sample=True)
    agent = find_agent(namespace, tree)
    configuration = _struct({"columns": 7, "rows": 6})
    observation = _struct(json.loads('{"board": [0, 0, 0, 0, 0, 0, 0], "step": 0}'))
    if agent is not None:
        json.dumps({"type": "action", "step": 1, "action": agent(*(observation, configuration)[:arity(agent)])},
                   separators=(",", ":")).encode()
    sys.modules.pop(BOT_MODULE, None)


class SeatExit(Exception):
    """A step of :func:`serve` ended the seat, having said why (in its log, or as a protocol error)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status  # the process's exit status


def serve(
    channel: Channel, seccomp_program: bytes | None = None, *, applied_limits: dict[str, Any] | None = None
) -> int:
    """Read ``init``, load the bot, answer moves until EOF: the process's exit status.

    ``applied_limits``: the limits (and seccomp filter) this process already applied to itself
    before ``init`` (a seat forked by the fork server); ``init`` must ask for exactly those.
    """
    try:
        init = receive_init(channel)
        limits: dict[str, Any] = init["limits"]
        load_layer_2(channel, limits)
        restrict_self(limits, seccomp_program, applied_limits)
        import_numpy(channel, limits)
        seed_generators(f"arena:{init['seed']}:{init['seat']}", limits)
        configuration = _struct(init["configuration"])
        agent = load_agent(channel, init["code"], limits)
    except SeatExit as end:
        return end.status
    n_args = arity(agent)
    channel.send({"type": "ready"})
    return answer_moves(channel, agent, n_args, configuration)


def receive_init(channel: Channel) -> dict[str, Any]:
    """The ``init`` message.

    Raises:
        SeatExit: the first line is not one (status 2), or there is none.
    """
    init = channel.receive()
    if init is None or init.get("type") != "init":
        raise SeatExit(2)
    return init


def load_layer_2(channel: Channel, limits: dict[str, Any]) -> None:
    """Read the restricted runtime's files, unless the limits turn layer 2 off.

    They are read now, before this process becomes an unprivileged user: without the filesystem
    view they are the project's own, whose directory that user may not read.

    Raises:
        SeatExit: they could not be read (status 3: the arena's fault; no bot runs without layer 2).
    """
    if not limits.get("restricted", True):
        return
    try:
        load_restricted()
    except OSError as exc:
        fail(channel, "load", f"arena: the restricted runtime could not be loaded: {exc}")
        raise SeatExit(3) from None


def restrict_self(limits: dict[str, Any], seccomp_program: bytes | None, applied_limits: dict[str, Any] | None) -> None:
    """Apply the limits (or check those a forked seat applied before ``init``), then the seccomp filter.

    Raises:
        SeatExit: the limits differ from those applied, or the filter could not be installed
            (status 3: the arena's fault; no bot runs without them).
    """
    if applied_limits is None:
        apply_limits(limits)
    elif {k: limits.get(k) for k in applied_limits} != applied_limits:
        sys.stderr.write(f"arena: this seat was prepared with limits {applied_limits}, not {limits}\n")
        raise SeatExit(3)
    if seccomp_program is not None:
        try:
            install_seccomp(seccomp_program)
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"arena: the bot runtime could not install its seccomp filter: {exc}\n")
            raise SeatExit(3) from None


def import_numpy(channel: Channel, limits: dict[str, Any]) -> None:
    """Import numpy when the limits allow it: under every layer of a fresh seat (a forked seat's zygote did it).

    Raises:
        SeatExit: it cannot be imported (status 1: the operator's setting, not the bot's fault; said why).
    """
    if not limits.get("allow_numpy"):
        return
    try:
        enable_numpy()
    except BaseException as exc:
        detail = [line.strip() for line in str(exc).splitlines() if line.strip()]  # numpy's run long
        fail(channel, "load", f"numpy is allowed here but cannot be imported: {type(exc).__name__}: "
                              f"{detail[-1] if detail else repr(exc)}")
        raise SeatExit(1) from None


def seed_generators(seed: str, limits: dict[str, Any]) -> None:
    """Seed ``random`` (and numpy's global generator, when allowed) from the match's seed and the seat."""
    random.seed(seed)
    if limits.get("allow_numpy"):
        seed_numpy(seed)


def load_agent(channel: Channel, code: str, limits: dict[str, Any]) -> Callable[..., Any]:
    """Run the bot's module: its agent.

    Raises:
        SeatExit: the module failed (status 1: the bot's fault, whatever it raised, reported) or
            has no agent.
    """
    # Lets tracebacks show the bot's own source lines.
    linecache.cache[BOT_FILENAME] = (len(code), None, code.splitlines(True), BOT_FILENAME)
    try:
        tree, namespace = load_bot(code, limits)
    except MemoryError as exc:
        fail(channel, "memory", exc)
        raise SeatExit(1) from None
    except BaseException as exc:  # the bot's fault, whatever it raised: report it, never crash silently
        fail(channel, "load", exc)
        raise SeatExit(1) from None
    agent = find_agent(namespace, tree)
    if agent is None:
        fail(channel, "no_agent", "no function named 'agent' and no top-level function in bot.py")
        raise SeatExit(1)
    return agent


def answer_moves(channel: Channel, agent: Callable[..., Any], n_args: int, configuration: Struct) -> int:
    """Answer every ``act`` with one ``action`` until EOF (0), or until the bot fails a move (1, reported)."""
    while (msg := channel.receive()) is not None:
        step = msg["step"]
        observation = _struct(msg["observation"])
        args = (observation, configuration)[:n_args]
        started = time.process_time()
        try:
            action = agent(*args)
        except MemoryError as exc:
            fail(channel, "memory", exc, step)
            return 1
        except BaseException as exc:  # the bot's fault: reported to the runner as an ERROR
            fail(channel, "exception", exc, step)
            return 1
        cpu_s = time.process_time() - started
        sys.stdout.flush()
        try:
            channel.send({"type": "action", "step": step, "action": action, "cpu_s": cpu_s})
        except (TypeError, ValueError, RecursionError) as exc:
            fail(channel, "unserializable", f"action {safe_repr(action)} is not JSON: {exc}", step)
            return 1
    return 0


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == [SECCOMP_OPTION] and len(args) == 2:
        seccomp_program: bytes | None = base64.b64decode(args[1], validate=True)
    elif not args:
        seccomp_program = None
    else:
        sys.stderr.write(f"usage: bot_runtime.py [{SECCOMP_OPTION} BASE64-BPF]\n")
        return 2
    return serve(open_channel(), seccomp_program)


def open_channel() -> Channel:
    """Move the protocol off fds 0 and 1: the channel on private duplicates of them.

    The bot's stdin then reads /dev/null and its stdout (fd 1) is the log (fd 2), so it can
    neither read nor forge protocol lines.
    """
    protocol_in, protocol_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    sys.stdout = sys.stderr
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return Channel(os.fdopen(protocol_in, "rb"), os.fdopen(protocol_out, "wb"))


if __name__ == "__main__":
    sys.exit(main())
