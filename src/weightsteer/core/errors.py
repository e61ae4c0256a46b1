"""Errors a user can fix. The CLI prints their message on one line and exits 2."""


class UserError(Exception):
    """Bad input: a missing or corrupt file, a wrong model, an unknown name, NaN values.

    The message says what is wrong and how to fix it, in one line.
    """
