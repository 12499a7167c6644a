"""A warm runner for console commands: the stack is imported once, each call is a fork.

`python -m helpers.warm SOCKET` imports what the console scripts import (torch, Lightning,
Hydra, timm, convattn's entry modules), then serves calls on a Unix socket. Each call forks a
manager, which forks the worker and reports its pid and exit status, so calls may overlap and
the server stays single-threaded (no fork from a threaded process). The worker is what a fresh
`convattn-train ...` would be after its imports: the caller's argv, cwd and environment, stdout
and stderr in the caller's files, stdin from /dev/null, a fresh Python's signal dispositions,
the console script's real entry point, and the exit status it ends with (also when it dies by
a signal). The server only imports, so no thread pool exists yet to be broken by fork.

What stays with fresh processes: tests of start-up and imports, packaging, DDP rank launches
(Lightning starts those itself) and Slurm jobs. `CONVATTN_TESTS_FRESH=1` runs every call fresh.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# The modules the four console scripts import before their work starts.
PRELOAD = ("convattn.train", "convattn.eval", "convattn.report.cli", "convattn.explain.cli")


def with_tests_on_path(env: dict) -> dict:
    """`env` with tests/ first on PYTHONPATH: helpers.* (probe callbacks, this runner) import."""
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))}


# ---------------------------------------------------------------- the server side
def console_entry(command: str):
    from importlib.metadata import entry_points

    # by name, or by its path in the venv's bin/ (as a W&B agent's command line has it)
    (entry,) = entry_points(group="console_scripts", name=Path(command).name)
    return entry.load()


def exit_status(code: object) -> int:
    """What the interpreter makes of `SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def forget_server_cleanups() -> None:
    """What the server's imports made is the server's: a worker cleans up at exit only what it
    made itself, as a fresh process would. wandb's media temp dir (made on import, removed by
    an atexit hook) is the one such resource of the preloaded modules."""
    for finalizer in list(weakref.finalize._registry):
        finalizer.detach()
    media = sys.modules.get("wandb.sdk.data_types._private")
    if media is not None:
        atexit.unregister(media.MEDIA_TMP.cleanup)


def run_worker(request: dict) -> None:
    """In the forked worker: become the command, run it, end like an interpreter exit."""
    forget_server_cleanups()
    os.chdir(request["cwd"])
    threads = request["env"].get("OMP_NUM_THREADS")
    if threads and threads != os.environ.get("OMP_NUM_THREADS"):
        import torch  # OpenMP read the variable when torch loaded in the server

        torch.set_num_threads(int(threads))
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        os.dup2(os.open(path, flags, 0o644), fd)
    for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a Python started from a shell
    sys.argv = [request["command"], *request["argv"]]
    code = 0
    try:
        code = exit_status(console_entry(request["command"])())
    except SystemExit as exit_:
        code = exit_status(exit_.code)
    except KeyboardInterrupt:
        import traceback

        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import threading

        threading._shutdown()  # what Py_Finalize does first: join non-daemon threads
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def manage(conn: socket.socket, listener: socket.socket) -> None:
    """In the forked manager: read one request, fork the worker, report its pid and status."""
    listener.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server ignores it to reap managers
    with conn, conn.makefile("rw") as stream:
        request = json.loads(stream.readline())
        pid = os.fork()
        if pid == 0:
            conn.close()
            run_worker(request)
        stream.write(json.dumps({"pid": pid}) + "\n")
        stream.flush()
        _, status = os.waitpid(pid, 0)
        stream.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")
        stream.flush()
    os._exit(0)


def serve(path: str) -> None:
    for module in PRELOAD:
        __import__(module)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # managers are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # close(): the server's own cleanup
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            manage(conn, listener)
        conn.close()


# ---------------------------------------------------------------- the test side
class WarmServer:
    """One server per test process (so one per xdist worker), started on first use."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="convattn-warm-"))
        self.socket = str(self.folder / "socket")
        env = with_tests_on_path({**os.environ, "PYTHONUNBUFFERED": "1"})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "helpers.warm", self.socket],
            env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the warm runner did not start (exit {self.proc.wait()})")
        atexit.register(self.close)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def start(self, command: str, args: list[str], cwd: Path, env: dict) -> WarmProcess:
        return WarmProcess(self, command, list(args), cwd, env)


class WarmProcess:
    """A console command running in a forked worker: `pid`, `send_signal`, `wait`, `result`."""

    def __init__(self, server: WarmServer, command: str, args: list[str], cwd, env) -> None:
        self.args = [command, *args]
        out = Path(tempfile.mkdtemp(prefix="call-", dir=server.folder))
        self.stdout_path, self.stderr_path = out / "stdout", out / "stderr"
        request = {"command": command, "argv": args, "cwd": str(cwd), "env": dict(env),
                   "stdout": str(self.stdout_path), "stderr": str(self.stderr_path)}  # fmt: skip
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.conn.connect(server.socket)
        self.conn.sendall((json.dumps(request) + "\n").encode())
        self.buffer = b""
        self.pid = self.read_line(None)["pid"]
        self.returncode: int | None = None

    def read_line(self, timeout: float | None) -> dict | None:
        """The manager's next message, or None if none came within `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.conn], [], [], left)[0]:
                return None
            chunk = self.conn.recv(4096)
            if not chunk:
                raise RuntimeError(f"the warm runner lost {self.args}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def poll(self, timeout: float = 0) -> int | None:
        if self.returncode is None and (message := self.read_line(timeout)) is not None:
            self.returncode = message["status"]
            self.conn.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and self.poll(timeout) is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def output(self) -> tuple[str, str]:
        return self.stdout_path.read_text(), self.stderr_path.read_text()

    def result(self, timeout: float | None = None) -> subprocess.CompletedProcess:
        """Wait like `subprocess.run`: on a timeout the worker is killed, then it raises."""
        try:
            code = self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait(60)
            raise
        return subprocess.CompletedProcess(self.args, code, *self.output())


_server: WarmServer | None = None


def warm_server() -> WarmServer:
    global _server
    if _server is None or _server.proc.poll() is not None:
        _server = WarmServer()
    return _server


if __name__ == "__main__":
    serve(sys.argv[1])
