"""The one exception type for mistakes a user can fix (bad name, missing file, bad data), and the
one warning type for what a user should know."""


class SeglabError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits non-zero (2)."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty): what
    a one-line error quotes of a library's failure."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class SeglabWarning(UserWarning):
    """Something a user should know that does not stop the work (a checkpoint loaded without an
    option this seglab no longer has, say): the command line prints it as one line."""
