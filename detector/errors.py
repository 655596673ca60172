"""Errors a user can act on: each says what was wrong and where."""


class JanusError(ValueError):
    """A problem with input, configuration or stored state that the user can fix.

    The command line prints it as one line (no traceback) and exits with status 2.
    """
