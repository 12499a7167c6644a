"""Console entry points of `convattn-train` and `convattn-eval`: start under tcmalloc.

glibc's malloc keeps a training step's freed activations in its heap and places the gradients
beside them, so one step on the CPU peaks ~100 MiB above what it holds; tcmalloc reuses
that memory and is also a little faster (see the README's start-up benchmark). When the machine
has tcmalloc (Debian: libtcmalloc-minimal4) and LD_PRELOAD is not set, the entry point re-runs
the same command line with tcmalloc preloaded: the same mechanism as PyTorch's
`torch.backends.xeon.run_cpu --enable-tcmalloc`, without that launcher's core pinning. This
happens before torch is imported, so it costs one bare interpreter start (~30 ms). Any
LD_PRELOAD, even an empty one (`LD_PRELOAD= convattn-train ...`), keeps the system allocator:
the user's choice, and the guard against re-running twice. DDP ranks inherit the variable.
"""

from __future__ import annotations

import os
import sys
import sysconfig

TCMALLOC_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
SYSTEM_LIB_DIRS = ("/usr/lib64", "/usr/lib", "/usr/local/lib")


def tcmalloc_path() -> str | None:
    """tcmalloc's shared library in this environment's or the system's lib dirs, else None."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for folder in (f"{sys.prefix}/lib", f"/usr/lib/{multiarch}", *SYSTEM_LIB_DIRS):
        for name in TCMALLOC_NAMES:
            if os.path.isfile(path := os.path.join(folder, name)):
                return path
    return None


def rerun_with_tcmalloc() -> None:
    """Replace this process by the same command with tcmalloc preloaded, if that applies."""
    if not sys.platform.startswith("linux") or "LD_PRELOAD" in os.environ:
        return
    if (path := tcmalloc_path()) is None:
        return
    sys.stdout.flush()
    os.execve(sys.executable, sys.orig_argv, {**os.environ, "LD_PRELOAD": path})


def train() -> None:
    """`convattn-train`."""
    rerun_with_tcmalloc()
    from convattn.train import main

    main()


def evaluate() -> None:
    """`convattn-eval`."""
    rerun_with_tcmalloc()
    from convattn.eval import main

    main()
