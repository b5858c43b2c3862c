"""Finding the processes a test started, by an environment marker (Linux /proc): the
helpers `audiogan.watch` uses for the processes it starts."""

from audiogan.watch.procs import alive, processes_with_env

__all__ = ["alive", "processes_with_env"]
