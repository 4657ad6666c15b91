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


class BadFileError(SeglabError):
    """A data file that cannot be read where it is met (it changed or broke after the data
    check): the message names the split, the file and the problem, in one line."""


def one_line(err: BaseException) -> str:
    """The one-line message of ``err``, also when a DataLoader worker re-raised it: torch raises
    the same type again with the worker's whole traceback as its message ("Caught BadFileError in
    DataLoader worker process 0.\\nOriginal Traceback ...\\nseglab.errors.BadFileError: <message>"),
    whose last line holds the original message. Any other error gives its first line."""
    name = type(err).__name__
    lines = str(err).strip().splitlines()
    if len(lines) > 1 and lines[0].startswith(f"Caught {name} "):
        for prefix in (f"{type(err).__module__}.{type(err).__qualname__}: ", f"{name}: "):
            if lines[-1].startswith(prefix):
                return lines[-1][len(prefix) :]
    return first_line(err)
