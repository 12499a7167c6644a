"""Devices and clusters: Slurm, distributed ranks, per-rank seeding, hardware settings."""
