"""The one exception type for mistakes a user can fix (bad name, missing file, bad data)."""


class SeglabError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits non-zero."""
