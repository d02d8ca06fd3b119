"""User errors: bad input the user can fix, as opposed to bugs (DESIGN rule 5).

The command line and the web demo print a :class:`UserError` as one line (exit code 2); any other
exception, a plain ``ValueError`` included, is a bug and keeps its traceback. Raise ``UserError`` where
user input enters: a flag, a config key, a file the user named.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

MAX_ECHO = 200  # characters of user input an error message repeats


class UserError(ValueError):
    """Bad user input; the message names the flag, key or file, the value and what is allowed."""


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` for an error message: a 100 kB prompt is cut, with the length it had."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


@contextlib.contextmanager
def user_input() -> Iterator[None]:
    """Around a call that checks user input and nothing else (a prompt against a vocabulary, a
    file the user named): the ``ValueError`` it raises is the user's, so it becomes a UserError."""
    try:
        yield
    except UserError:
        raise
    except ValueError as err:
        raise UserError(str(err)) from err
