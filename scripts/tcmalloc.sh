#!/usr/bin/env bash
# Run a command with tcmalloc preloaded (opt-in; convattn itself never changes the allocator):
#
#   scripts/tcmalloc.sh convattn-train data=mnist ...
#
# glibc's malloc keeps a CPU training step's freed activations in its heap and places the
# gradients beside them; tcmalloc reuses that memory, so one step peaks ~90 MiB lower and runs a
# little faster (README, Framework overhead). The variable reaches every child of the command
# (loader workers, DDP ranks, W&B's service), as any LD_PRELOAD does. Debian's package:
# libtcmalloc-minimal4 (scripts/install_debian_packages.sh malloc).
set -euo pipefail
for dir in "${VIRTUAL_ENV:-/nonexistent}/lib" "/usr/lib/$(uname -m)-linux-gnu" \
    /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
    for name in libtcmalloc_minimal.so.4 libtcmalloc.so.4; do
        if [[ -f $dir/$name ]]; then
            exec env LD_PRELOAD="$dir/$name${LD_PRELOAD:+:$LD_PRELOAD}" "$@"
        fi
    done
done
echo "tcmalloc.sh: no libtcmalloc*.so.4 found; install libtcmalloc-minimal4 (scripts/install_debian_packages.sh malloc)" >&2
exit 2
