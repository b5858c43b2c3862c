"""The one user-facing error type: the CLI prints its message on one line and exits 2."""


class UserError(Exception):
    """A mistake the user can fix (bad path, unknown key, wrong type, missing data)."""
