"""Sweeps: a YAML grid (spec) -> validated runs with stable ids (plan) -> their states in the results
tree (registry) -> executors that launch what is left (debug, local slots, SLURM arrays)."""
