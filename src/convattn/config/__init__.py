"""The config before the heavy stack: typed options, their rules, and the Hydra callbacks that
check a composed config (and the run or sweep dir it names) before torch is imported."""
