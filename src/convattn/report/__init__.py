"""`convattn-report`: turn sweep directories into tables, CSVs and figures (and a W&B run).

collect (jobs and their records) -> swept (the keys a sweep varied) -> stats, curves (numbers)
-> build (one Report) -> render, curve_tables, plots (files) and wandb_log (`--wandb`).
"""
