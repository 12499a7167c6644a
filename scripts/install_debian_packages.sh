#!/usr/bin/env bash
# Debian packages the test suite needs, installed only if missing (idempotent).
#
#   scripts/install_debian_packages.sh          # everything below
#   scripts/install_debian_packages.sh slurm    # only one group (slurm, data, malloc, compile)
#
# slurm:  the local Slurm cluster of scripts/slurm_local.sh (Slurm 22.05, munge,
#         slurmdbd with MariaDB for accounting).
# data:   the real Fashion-MNIST files (dataset-fashion-mnist).
# malloc: tcmalloc, for the opt-in scripts/tcmalloc.sh launcher (tests/test_launch.py checks
#         it): less peak memory on the CPU, a little faster.
# compile: what torch.compile's inductor backend needs on the CPU (recipe.compile=true):
#         a C++ compiler and make; the Python headers come with the interpreter.
#
# Checks with dpkg first: when everything is installed it does nothing and
# needs no privileges. Otherwise it needs root and re-runs itself with sudo;
# `apt-get update` runs only then. Made for Debian 12 (bookworm).
set -euo pipefail

# sudo and cron strip /usr/sbin from PATH; dpkg and apt-get live there.
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"

SLURM_PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
DATA_PACKAGES=(dataset-fashion-mnist)
MALLOC_PACKAGES=(libtcmalloc-minimal4)
COMPILE_PACKAGES=(g++ make)

log() { printf 'install_debian_packages: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

selected=("$@")
((${#selected[@]})) || selected=(slurm data malloc compile)
wanted=()
for group in "${selected[@]}"; do
    case "$group" in
        slurm) wanted+=("${SLURM_PACKAGES[@]}") ;;
        data) wanted+=("${DATA_PACKAGES[@]}") ;;
        malloc) wanted+=("${MALLOC_PACKAGES[@]}") ;;
        compile) wanted+=("${COMPILE_PACKAGES[@]}") ;;
        *) die "unknown group '$group' (use: slurm, data, malloc, compile)" ;;
    esac
done

missing=()
for pkg in "${wanted[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] ||
        missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}; run this as root"
    exec sudo "$0" "$@"
fi

log "installing ${missing[*]}"
# Keep the packages' own services (munge, mariadb, slurm*) from starting: the
# local cluster runs its own daemons with its own config. policy-rc.d is
# honoured by invoke-rc.d and deb-systemd-invoke; add one only if none exists.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    trap 'rm -f "$policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
