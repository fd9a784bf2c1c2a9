"""``scripts/cluster``: the arena as a local cluster on one machine, for trying cluster mode.

Theory of operation
-------------------
Everything lives in one folder (``.cluster/`` in the checkout, or ``--dir``): ``postgres/``
holds PostgreSQL's data, its unix socket and ``postgres.log``; ``password`` and ``env`` (an
``export ARENA_DB=...`` line) hold the database's credentials, readable by their owner only;
``front-8000.log``, ``worker-9001.log``... one log per arena process. The first run initdb's
Debian's PostgreSQL 15 there (superuser ``postgres``, trusted on the folder's socket only;
TCP on 127.0.0.1 with a password, SCRAM) and creates the role ``arena`` (LOGIN, a random
password) and its database ``arena``; later runs reuse them (``--fresh`` starts over).
PostgreSQL refuses to run as root: when this runs as root, the ``postgres`` folder belongs to
the ``postgres`` user and the server's binaries run as that user (``runuser``).

Then it starts, each in a session of its own (a Ctrl-C in the terminal reaches this process
only), ``arena serve --role front`` on each front port and ``arena serve --role worker`` on
each worker port (a worker serves only ``/api/health`` there), with ``ARENA_DB`` in their
environment (not on their command line). The first front starts alone and migrates the
schema; the others start once it answers. It prints what runs where and waits. A process that
exits meanwhile is reported (its log's last lines) and the others keep running, so a worker
can be killed to watch its matches move to the other one.

On SIGINT or SIGTERM it stops what it started, by PID: the fronts, then the workers (SIGTERM,
then SIGKILL to the process group it made for each after ``STOP_TIMEOUT_S``), then PostgreSQL
(``pg_ctl stop -m fast``, ``-m immediate`` if that fails). Every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
BINARIES = Path("/usr/lib/postgresql/15/bin")
ARENA = ROOT / ".venv" / "bin" / "arena"
DB_USER = DB_NAME = "arena"
START_TIMEOUT_S = 120.0  # an arena process answers /api/health within this (sandbox probe, migrations)
DRAIN_TIMEOUT_S = 10  # on Ctrl-C each arena process lets its live matches finish this long (--drain-timeout)
STOP_TIMEOUT_S = DRAIN_TIMEOUT_S + 20.0  # an arena process stops within this after SIGTERM, else SIGKILL
PG_TIMEOUT_S = 60


class ClusterError(Exception):
    """A step failed: one line for the user (the logs have the rest)."""


def say(line: str) -> None:
    print(f"cluster: {line}", flush=True)


@dataclass
class Node:
    role: str
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    reported: bool = False

    @property
    def name(self) -> str:
        return f"{self.role}-{self.port}"


@dataclass
class Postgres:
    folder: Path  # data, socket and log
    port: int
    run_as: pwd.struct_passwd | None
    started: bool = False
    binaries: Path = BINARIES

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    def run(self, binary: str, *args: str, timeout: float = PG_TIMEOUT_S + 30,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [str(self.binaries / binary), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as.pw_name, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, input=stdin,
                              cwd="/")

    def must(self, binary: str, *args: str, stdin: str | None = None) -> str:
        done = self.run(binary, *args, stdin=stdin)
        if done.returncode != 0:
            tail = _tail(self.log) if self.log.exists() else ""
            raise ClusterError(f"{binary} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}"
                               + (f"\n{tail}" if tail else ""))
        return done.stdout

    def psql(self, sql: str) -> str:
        """``sql`` as the superuser over the folder's socket (trusted); its output, unaligned."""
        return self.must("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.folder),
                         "-p", str(self.port), "-U", "postgres", "-d", "postgres", stdin=sql)


@dataclass
class Cluster:
    folder: Path
    pg: Postgres
    fronts: list[Node]
    workers: list[Node]
    serve_args: list[str]
    url: str = ""
    stopping: bool = False
    signals: list[int] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        return self.fronts + self.workers


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(f"    {line}" for line in text[-lines:])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ports(text: str) -> list[int]:
    try:
        ports = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ports separated by commas, got {text!r}") from None
    if not all(0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(f"ports must be in 1-65535: {text!r}")
    return ports


def _chown(path: Path, run_as: pwd.struct_passwd | None) -> None:
    if run_as is not None:
        os.chown(path, run_as.pw_uid, run_as.pw_gid)


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


# -- PostgreSQL ------------------------------------------------------------------------------------


def prepare_postgres(pg: Postgres, folder: Path) -> str:
    """initdb (first run), start the server, make the role and database; the clients' URL."""
    pg.folder.mkdir(parents=True, exist_ok=True)
    pg.folder.chmod(0o700)
    _chown(pg.folder, pg.run_as)
    if pg.run_as is not None:
        reach = subprocess.run(["runuser", "-u", pg.run_as.pw_name, "--", "test", "-w", str(pg.folder)],
                               capture_output=True, timeout=30, check=False)
        if reach.returncode != 0:
            raise ClusterError(f"the postgres user cannot write {pg.folder} (a folder on the way is closed to "
                               "it): pass --dir somewhere it can reach, e.g. --dir /tmp/arena-cluster")
    password_file = folder / "password"
    if not (pg.data / "PG_VERSION").exists():
        say(f"initdb {pg.data} (PostgreSQL {pg.binaries.parent.name})")
        pg.must("initdb", "-D", str(pg.data), "-U", "postgres", "-E", "UTF8", "--locale=C",
                "--auth-local=trust", "--auth-host=scram-sha-256")
        with open(pg.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# scripts/cluster: TCP on 127.0.0.1 only, the socket in this folder\n"
                       "listen_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{pg.folder}'\n"
                       "max_connections = 200\n")
        password_file.unlink(missing_ok=True)  # a new server: a new password
    status = pg.run("pg_ctl", "status", "-D", str(pg.data))
    if status.returncode == 0:
        raise ClusterError(f"a PostgreSQL server already runs on {pg.data} ({status.stdout.strip().splitlines()[0]}):"
                           " another scripts/cluster? Stop it first (Ctrl-C there, or "
                           f"runuser -u postgres -- {pg.binaries}/pg_ctl stop -D {pg.data})")
    say(f"starting PostgreSQL on 127.0.0.1:{pg.port} (log {pg.log})")
    pg.must("pg_ctl", "start", "-w", "-t", str(PG_TIMEOUT_S), "-D", str(pg.data), "-l", str(pg.log),
            "-o", f"-p {pg.port}")
    pg.started = True
    if password_file.exists():
        password = password_file.read_text().strip()
    else:
        password = secrets.token_urlsafe(18)  # letters, digits, - and _: safe inside quotes
    # The role and its database (again on every run: the password file is the truth).
    pg.psql(f"DO $$ BEGIN\n"
            f"  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{DB_USER}') THEN\n"
            f"    ALTER ROLE {DB_USER} WITH LOGIN PASSWORD '{password}';\n"
            f"  ELSE\n"
            f"    CREATE ROLE {DB_USER} WITH LOGIN PASSWORD '{password}';\n"
            f"  END IF;\n"
            f"END $$;\n")
    if pg.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'").strip() != "1":
        pg.psql(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
    _write_private(password_file, password + "\n")
    url = f"postgresql://{DB_USER}:{password}@127.0.0.1:{pg.port}/{DB_NAME}"
    _write_private(folder / "env", f"export ARENA_DB={url}\n")
    return url


def stop_postgres(pg: Postgres) -> None:
    if not pg.started:
        return
    say("stopping PostgreSQL")
    try:
        done = pg.run("pg_ctl", "stop", "-w", "-t", str(PG_TIMEOUT_S), "-m", "fast", "-D", str(pg.data))
        if done.returncode != 0:
            say(f"pg_ctl stop -m fast failed: {done.stderr.strip()}; stopping it -m immediate")
            pg.run("pg_ctl", "stop", "-w", "-t", str(PG_TIMEOUT_S), "-m", "immediate", "-D", str(pg.data))
    except subprocess.TimeoutExpired:
        say(f"pg_ctl did not answer: PostgreSQL may still run (postmaster.pid in {pg.data})")
    pg.started = False


# -- arena processes -------------------------------------------------------------------------------


def start_node(node: Node, url: str, serve_args: list[str]) -> None:
    env = {**os.environ, "ARENA_DB": url}
    env.pop("ARENA_ROLE", None)
    argv = [str(ARENA), "serve", "--host", "127.0.0.1", "--port", str(node.port), "--role", node.role,
            "--drain-timeout", str(DRAIN_TIMEOUT_S), *serve_args]
    with open(node.log, "ab") as log:
        log.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} scripts/cluster: {' '.join(argv)}\n".encode())
        log.flush()
        node.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)


def _healthy(port: int) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_healthy(cluster: Cluster, nodes: list[Node]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    waiting = list(nodes)
    while waiting:
        if cluster.signals:
            raise KeyboardInterrupt
        for node in list(waiting):
            assert node.process is not None
            if node.process.poll() is not None:
                raise ClusterError(f"{node.name} exited ({node.process.returncode}) while starting; its log "
                                   f"{node.log}:\n{_tail(node.log)}")
            if _healthy(node.port):
                waiting.remove(node)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(n.name for n in waiting)
            raise ClusterError(f"{names} did not answer /api/health within {START_TIMEOUT_S:.0f} s; see "
                               f"{waiting[0].log}:\n{_tail(waiting[0].log)}")
        if waiting:
            time.sleep(0.2)


def stop_node(node: Node) -> None:
    process = node.process
    if process is None or process.poll() is not None:
        return
    try:
        process.terminate()
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        say(f"{node.name} (pid {process.pid}) did not stop within {STOP_TIMEOUT_S:.0f} s: SIGKILL to its "
            "process group")
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the session made for it: its sandbox too
        except ProcessLookupError:
            pass
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            say(f"{node.name} (pid {process.pid}) survived SIGKILL?")


def stop_all(cluster: Cluster) -> None:
    cluster.stopping = True
    running = [n for n in cluster.nodes if n.process is not None and n.process.poll() is None]
    if running:
        say("stopping " + ", ".join(f"{n.name} (pid {n.process.pid})" for n in running if n.process))
    for group in (cluster.fronts, cluster.workers):  # no new matches first; then the workers end theirs
        for node in group:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in group:
            stop_node(node)
    stop_postgres(cluster.pg)


def report_exits(cluster: Cluster) -> None:
    for node in cluster.nodes:
        if node.process is not None and node.process.poll() is not None and not node.reported:
            node.reported = True
            say(f"{node.name} (pid {node.process.pid}) exited with status {node.process.returncode}; "
                f"the rest keep running. Its log {node.log}:\n{_tail(node.log)}")


def print_layout(cluster: Cluster) -> None:
    pg = cluster.pg
    rows = [("PostgreSQL", f"127.0.0.1:{pg.port} (socket in {pg.folder})", str(_postmaster_pid(pg) or "?"),
             str(pg.log))]
    for node in cluster.fronts:
        rows.append((f"front {node.port}", f"http://127.0.0.1:{node.port}/", str(node.process.pid if node.process
                                                                                   else "?"), str(node.log)))
    for node in cluster.workers:
        rows.append((f"worker {node.port}", f"http://127.0.0.1:{node.port}/api/health (health only)",
                     str(node.process.pid if node.process else "?"), str(node.log)))
    widths = [max(len(r[i]) for r in rows + [("what", "where", "pid", "log")]) for i in range(4)]
    print()
    for row in [("what", "where", "pid", "log"), *rows]:
        print("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    safe_url = cluster.url.replace(cluster.url.split(":")[2].split("@")[0], "***")
    print(f"\n  database: {safe_url} (password in {cluster.folder / 'password'}; "
          f"`source {cluster.folder / 'env'}` sets ARENA_DB)")
    print(f"  a worker more: ARENA_DB=... .venv/bin/arena serve --role worker --port {_next_port(cluster)}")
    print("  the ladder's scheduler runs only in a process of role all: no ladder matches here")
    print("  Ctrl-C stops everything above, PostgreSQL last\n", flush=True)


def _next_port(cluster: Cluster) -> int:
    return max(n.port for n in cluster.nodes) + 1


def _postmaster_pid(pg: Postgres) -> int | None:
    try:
        return int((pg.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/cluster",
        description="A local cluster: PostgreSQL 15 of its own, two fronts, two workers; Ctrl-C stops it all.",
        epilog="Arguments after -- go to every `arena serve` (e.g. -- --log-level warning --no-examples).")
    parser.add_argument("--dir",
                        help="the folder of the database and the logs (default .cluster in the checkout; "
                             "kept between runs)")
    parser.add_argument("--pg-port", type=int, default=0, help="PostgreSQL's port (default 5433, or a free one)")
    parser.add_argument("--fronts", type=_ports, default=[8000, 8001], help="front ports (default 8000,8001)")
    parser.add_argument("--workers", type=_ports, default=[9001, 9002],
                        help="worker ports, for their health (default 9001,9002)")
    parser.add_argument("--fresh", action="store_true", help="remove the folder first: a new, empty database")
    own, _, serve_args = (argv[:argv.index("--")], None, argv[argv.index("--") + 1:]) if "--" in argv \
        else (argv, None, [])
    args = parser.parse_args(own)
    args.serve_args = serve_args
    if not args.fronts:
        parser.error("at least one front")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    caller_dir = Path(os.environ.get("ARENA_CLUSTER_CALLER_DIR") or Path.cwd())
    folder = (caller_dir / args.dir).resolve() if args.dir else ROOT / ".cluster"
    if not (BINARIES / "initdb").exists():
        say(f"no PostgreSQL 15 under {BINARIES}: install postgresql-15")
        return 1
    try:
        run_as = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    except KeyError:
        say("running as root, and there is no postgres user to run PostgreSQL as (Debian's postgresql-15 makes one)")
        return 1
    busy = [p for p in args.fronts + args.workers if not _port_free(p)]
    if busy:
        say(f"port(s) {', '.join(map(str, busy))} of 127.0.0.1 already in use: another server? (--fronts, "
            "--workers choose others)")
        return 1
    if len(set(args.fronts + args.workers)) != len(args.fronts + args.workers):
        say("each front and worker needs a port of its own")
        return 1
    pg_port = args.pg_port or (5433 if _port_free(5433) else _free_port())
    if args.pg_port and not _port_free(pg_port):
        say(f"port {pg_port} already in use (--pg-port)")
        return 1
    if args.fresh and folder.exists():
        if (folder / "postgres" / "data" / "postmaster.pid").exists():
            say(f"{folder} has a PostgreSQL running (postmaster.pid): stop it before --fresh")
            return 1
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # the postgres user goes through it to its own folder
    (folder / ".gitignore").write_text("*\n")  # never part of the checkout
    cluster = Cluster(folder, Postgres(folder / "postgres", pg_port, run_as),
                      [Node("front", p, folder / f"front-{p}.log") for p in args.fronts],
                      [Node("worker", p, folder / f"worker-{p}.log") for p in args.workers], args.serve_args)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        cluster.signals.append(signum)
        if cluster.stopping:
            say("stopping already; every wait is bounded")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        cluster.url = prepare_postgres(cluster.pg, folder)
        first, *others = cluster.nodes
        say(f"starting {first.name} (it migrates the schema)")
        start_node(first, cluster.url, cluster.serve_args)
        wait_healthy(cluster, [first])
        say("starting " + ", ".join(n.name for n in others))
        for node in others:
            start_node(node, cluster.url, cluster.serve_args)
        wait_healthy(cluster, others)
        print_layout(cluster)
        while not cluster.signals:
            report_exits(cluster)
            if all(n.process is not None and n.process.poll() is not None for n in cluster.nodes):
                say("every arena process has exited")
                code = 1
                break
            time.sleep(0.5)
        if cluster.signals:
            say(f"{signal.Signals(cluster.signals[0]).name}: stopping")
    except KeyboardInterrupt:
        say("interrupted while starting")
        code = 130
    except (ClusterError, OSError, subprocess.SubprocessError) as exc:
        say(str(exc))
        code = 1
    finally:
        stop_all(cluster)
    left = [f"{n.name} (pid {n.process.pid})" for n in cluster.nodes if n.process and n.process.poll() is None]
    if left or _postmaster_pid(cluster.pg):
        say("still running: " + ", ".join(left + ([f"PostgreSQL (pid {_postmaster_pid(cluster.pg)})"]
                                                   if _postmaster_pid(cluster.pg) else [])))
        return 1
    say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
