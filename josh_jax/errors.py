"""The error a stage raises when it cannot run on the user's input: one line that says
what to do. The CLIs print it without a traceback. Defined here, at the start of the
flow, so that video reading (used by the front ends and by the exports) needs no
front-end module."""


class FrontEndError(RuntimeError):
    """A front end cannot run: missing model, unreadable input, nothing found. One line, says what to do."""
