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

Unless the limits turn it off (a test-only switch), the bot's module is compiled and run by
the restricted runtime (``restricted.py``, ``_guards.py``, ``_stdlib_guards.py`` and
``_numpy_guards.py``, layer 2,
loaded by path from this directory): checked syntax, whitelisted builtins and modules only. It
fails closed: without those files no bot runs.

When the limits allow numpy (the operator's opt-in), the runtime imports it before the bot's
code runs (:func:`enable_numpy`: ``-S`` left every site directory off ``sys.path``, and only
the one holding numpy joins it), seeds numpy's global generator from the match seed and the seat
as it seeds ``random``, and sends numpy's scalars and arrays in an action as plain JSON values.

A seat forked by the fork server (``zygote.py``) runs the same code from step 2 on: the
zygote loaded this module and layer 2 once, and the forked seat applied its limits and its
seccomp filter before ``init`` (``serve(..., applied_limits=...)``), having run the load path
once on a sample bot (:func:`warm_up`) while it waited in the pool.

It uses the standard library only and imports nothing of the project: it runs under the
bot interpreter, not the server's environment. One JSON object per line in both directions.
"""

from __future__ import annotations

import ast
import base64
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
from typing import Any, BinaryIO

BOT_FILENAME = "bot.py"
SECCOMP_OPTION = "--seccomp"
PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS, SECCOMP_MODE_FILTER = 22, 38, 2
BPF_INSTRUCTION_BYTES = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
# Layer 2, next to this file (in the sandbox too), in import order: restricted imports the others.
RESTRICTED_PACKAGE = "arena_sandbox"
RESTRICTED_MODULES = ("_guards", "_stdlib_guards", "_numpy_guards", "restricted")
NUMPY_IMPORTS = ("numpy", "numpy.fft", "numpy.linalg", "numpy.random")  # restricted.NUMPY_MODULES
NOBODY = 65534


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


class Native:
    """The few libc calls the runtime makes (``prctl``, ``syscall``), through ``_ctypes``.

    ``_ctypes`` is the C half of ``ctypes``: importing all of ``ctypes`` costs a seat some 2 ms,
    this about a fifth of that. The bot's code never sees it: the restricted runtime imports none
    of it. Built once per process (the fork server's zygote builds it before it forks seats).
    """

    def __init__(self) -> None:
        import _ctypes

        class ULong(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_ulong
            _type_ = "L"

        class Long(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_long
            _type_ = "l"

        class UShort(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_ushort
            _type_ = "H"

        class CharPointer(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_char_p
            _type_ = "z"

        class Fprog(_ctypes.Structure):  # struct sock_fprog
            _fields_ = [("len", UShort), ("filter", CharPointer)]

        class Function(_ctypes.CFuncPtr):  # a libc function returning long, with errno kept
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = Long

        libc = _ctypes.dlopen(None, os.RTLD_NOW)  # type: ignore[arg-type]  # the program itself, libc included
        self._ctypes = _ctypes
        self._prctl = Function(_ctypes.dlsym(libc, "prctl"))
        self._syscall = Function(_ctypes.dlsym(libc, "syscall"))
        self._ulong, self._pointer, self._fprog = ULong, CharPointer, Fprog

    def _checked(self, result: int, what: str) -> int:
        if result < 0:
            code = self._ctypes.get_errno()
            raise OSError(code, f"{what} failed: {os.strerror(code)}")
        return result

    def prctl(self, option: int, *args: int) -> int:
        """``prctl(option, *args)``, the unused arguments 0.

        Raises:
            OSError: the kernel refused.
        """
        padded = (option, *args, 0, 0, 0, 0)[:5]
        return self._checked(int(self._prctl(*(self._ulong(a) for a in padded))), f"prctl({option})")

    def syscall(self, number: int, *args: int | bytes) -> int:
        """A raw system call; ``bytes`` arguments pass as pointers to their data.

        Raises:
            OSError: the kernel refused.
        """
        converted = [self._pointer(a) if isinstance(a, bytes) else self._ulong(a) for a in args]
        return self._checked(int(self._syscall(self._ulong(number), *converted)), f"syscall({number})")

    def install_seccomp(self, program: bytes) -> None:
        """``PR_SET_NO_NEW_PRIVS``, then ``PR_SET_SECCOMP`` with ``program`` (libseccomp's export), for good.

        Raises:
            OSError: the kernel refused (or the sandbox's first filter did).
            ValueError: ``program`` is not a whole number of instructions.
        """
        count, rest = divmod(len(program), BPF_INSTRUCTION_BYTES)
        if rest or not 0 < count <= 0xFFFF:
            raise ValueError(f"a seccomp program of {len(program)} bytes is not whole BPF instructions")
        fprog = self._fprog(count, program)  # keeps program alive and points into it
        self.prctl(PR_SET_NO_NEW_PRIVS, 1)
        self.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self._ctypes.addressof(fprog))


_native: Native | None = None


def native() -> Native:
    """The process's :class:`Native`, made at first use."""
    global _native
    if _native is None:
        _native = Native()
    return _native


def install_seccomp(program: bytes) -> None:
    """Install a seccomp BPF program on this process (it has one thread), for good.

    Raises:
        OSError: the kernel refused (or the sandbox's first filter did).
        ValueError: ``program`` is not a whole number of instructions.
    """
    native().install_seccomp(program)


def enable_numpy() -> None:
    """Import numpy and the submodules a bot may import, from the site directory that holds it.

    ``python -I -S`` puts no site directory on ``sys.path``: the first of the interpreter's that
    holds numpy joins it (in the sandbox's view it holds numpy alone). Runs before the bot's code.

    Raises:
        ImportError: numpy is not installed for this interpreter, or fails to import.
    """
    if "numpy" not in sys.modules:
        import site  # with -S importing it adds nothing to sys.path; its list of directories is all we use

        for directory in site.getsitepackages():
            if os.path.isfile(os.path.join(directory, "numpy", "__init__.py")):
                if directory not in sys.path:
                    sys.path.append(directory)
                break
        else:
            raise ImportError(f"numpy is not installed for {sys.executable} (Debian: apt-get install python3-numpy)")
    import importlib

    for name in NUMPY_IMPORTS:
        importlib.import_module(name)


def seed_numpy(seed: str) -> None:
    """Seed numpy's global generator (``numpy.random.rand``...) from ``seed``, as ``random`` is."""
    numpy = sys.modules["numpy"]
    numpy.random.seed(random.Random(f"{seed}:numpy").getrandbits(32))


def plain(value: Any) -> Any:
    """``json.dumps``'s ``default``: numpy's scalars and arrays as Python values, nothing else."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        # The base classes' own methods: a subclass of the bot's cannot run code here.
        if isinstance(value, numpy.generic):
            return numpy.generic.item(value)
        if isinstance(value, numpy.ndarray):
            return numpy.ndarray.tolist(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def load_restricted() -> Any:
    """The restricted runtime module, loaded by path: ``python -I`` puts no directory on sys.path.

    Its modules join a package of their own (with nothing to find on disk) so that their
    relative imports work here as they do in the server's package. Loaded once per process.
    """
    loaded = sys.modules.get(f"{RESTRICTED_PACKAGE}.{RESTRICTED_MODULES[-1]}")
    if loaded is not None:  # the fork server's zygote loaded it before forking this seat
        return loaded
    directory = os.path.dirname(os.path.abspath(__file__))
    package = types.ModuleType(RESTRICTED_PACKAGE)
    package.__path__ = []
    sys.modules[RESTRICTED_PACKAGE] = package
    module = package
    for name in RESTRICTED_MODULES:
        path = os.path.join(directory, f"{name}.py")
        with open(path, "rb") as file:
            source = file.read()
        module = types.ModuleType(f"{RESTRICTED_PACKAGE}.{name}")
        module.__file__, module.__package__ = path, RESTRICTED_PACKAGE
        sys.modules[module.__name__] = module
        exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)
        setattr(package, name, module)
    return module


def load_bot(code: str, limits: dict[str, Any], *, is_sample: bool = False) -> tuple[ast.Module, dict[str, Any]]:
    """Compile and run the bot's module (restricted unless the limits say otherwise): its tree and globals.

    The globals are those of a module registered as ``bot``, as ``dataclasses`` expects of a
    class's module (it looks string annotations up there). Before a real bot's module runs (not
    the sample ``is_sample`` bot of :func:`warm_up`), layer 2 arms its check of the source the
    standard library generates, for the rest of the process.
    """
    module = types.ModuleType("bot")
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
    sys.modules["bot"] = module
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
    sys.modules.pop("bot", None)


def serve(
    channel: Channel, seccomp_program: bytes | None = None, *, applied_limits: dict[str, Any] | None = None
) -> int:
    """Read ``init``, load the bot, answer moves until EOF: the process's exit status.

    ``applied_limits``: the limits (and seccomp filter) this process already applied to itself
    before ``init`` (a seat forked by the fork server); ``init`` must ask for exactly those.
    """
    init = channel.receive()
    if init is None or init.get("type") != "init":
        return 2
    if init["limits"].get("restricted", True):
        # Layer 2's files are read now, before this process becomes an unprivileged user: without
        # the filesystem view they are the project's own, whose directory that user may not read.
        try:
            load_restricted()
        except OSError as exc:  # the arena's fault, not the bot's: no bot runs without layer 2
            fail(channel, "load", f"arena: the restricted runtime could not be loaded: {exc}")
            return 3
    if applied_limits is None:
        apply_limits(init["limits"])
    elif {k: init["limits"].get(k) for k in applied_limits} != applied_limits:
        sys.stderr.write(f"arena: this seat was prepared with limits {applied_limits}, not {init['limits']}\n")
        return 3
    if seccomp_program is not None:
        try:
            install_seccomp(seccomp_program)
        except (OSError, ValueError) as exc:  # the arena's fault, not the bot's: no bot runs without it
            sys.stderr.write(f"arena: the bot runtime could not install its seccomp filter: {exc}\n")
            return 3
    if init["limits"].get("allow_numpy"):
        try:
            enable_numpy()  # under every layer of a fresh seat; a forked seat's zygote did it already
        except BaseException as exc:  # the operator's setting, not the bot's fault: say why
            detail = [line.strip() for line in str(exc).splitlines() if line.strip()]  # numpy's run long
            fail(channel, "load", f"numpy is allowed here but cannot be imported: {type(exc).__name__}: "
                                  f"{detail[-1] if detail else repr(exc)}")
            return 1
    seed, seat = init["seed"], init["seat"]
    random.seed(f"arena:{seed}:{seat}")
    if init["limits"].get("allow_numpy"):
        seed_numpy(f"arena:{seed}:{seat}")
    configuration = _struct(init["configuration"])

    code: str = init["code"]
    # Lets tracebacks show the bot's own source lines.
    linecache.cache[BOT_FILENAME] = (len(code), None, code.splitlines(True), BOT_FILENAME)
    try:
        tree, namespace = load_bot(code, init["limits"])
    except MemoryError as exc:
        fail(channel, "memory", exc)
        return 1
    except BaseException as exc:  # the bot's fault, whatever it raised: report it, never crash silently
        fail(channel, "load", exc)
        return 1
    agent = find_agent(namespace, tree)
    if agent is None:
        fail(channel, "no_agent", "no function named 'agent' and no top-level function in bot.py")
        return 1
    n_args = arity(agent)
    channel.send({"type": "ready"})

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
