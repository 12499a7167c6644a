"""`exit_now` ends a finished CLI process like a normal exit, minus the interpreter teardown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent(
    """
    import atexit, logging, sys, threading, time
    from pathlib import Path
    from convattn.process_exit import exit_now

    out = Path(sys.argv[1])
    logging.basicConfig(filename=out / "log.txt", level=logging.INFO)
    logging.getLogger("job").info("logged before the exit")
    atexit.register(lambda: (out / "atexit.txt").write_text("ran"))
    def finish_later():
        time.sleep(0.5)
        (out / "thread.txt").write_text("done")
    threading.Thread(target=finish_later).start()
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(2)  # left idle, as torch.compile's inductor leaves its pool
    pool.submit(time.sleep, 0.01).result()
    sys.stdout.write("no newline, still buffered")
    exit_now(3)
    print("never reached")
    """
)


def test_exit_now_keeps_what_a_normal_exit_does_outside_the_process(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path)], capture_output=True, text=True, timeout=30
    )  # an exit that waits for the idle pool's workers never comes: TimeoutExpired
    assert done.returncode == 3, done.stderr
    assert done.stdout == "no newline, still buffered"  # flushed, and nothing after the exit
    assert (tmp_path / "thread.txt").read_text() == "done"  # waited for the non-daemon thread
    assert (tmp_path / "atexit.txt").read_text() == "ran"  # atexit handlers ran
    assert "logged before the exit" in (tmp_path / "log.txt").read_text()  # logging shut down
