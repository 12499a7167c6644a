#!/bin/sh
# TaskProlog of the local test cluster (scripts/slurm_local.sh copies it into
# its state dir): slurmstepd runs it before every task of every job, the batch
# script included, and adds each `export NAME=value` line it prints to that
# task's environment.
#
# The fake node names (node1, node2) resolve nowhere, since this host's
# /etc/hosts is left alone; Lightning (and torchrun) would otherwise take the
# DDP rendezvous address from the first name in SLURM_NODELIST. Every fake
# node is this host, so the address is 127.0.0.1; one set by the user wins.
[ -n "${MASTER_ADDR:-}" ] || echo "export MASTER_ADDR=127.0.0.1"
