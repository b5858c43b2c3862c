"""Training: the loop, its Ray adapters, checkpoints and the `audiogan train` command."""
