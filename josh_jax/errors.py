"""The errors a stage raises when it cannot run on the user's input: one line that says what to do.

Every such error derives from :class:`JoshError`, so a CLI catches that one class and prints the
message without a traceback (each class also keeps the builtin base it always had, ``ValueError`` or
``RuntimeError``, so existing ``except`` clauses still catch it). Defined here, at the start of the
flow, so that video reading (used by the front ends and by the exports) needs no front-end module.
"""


class JoshError(Exception):
    """Base of every josh_jax error that ends in one line telling the user what to do."""


class FrontEndError(JoshError, RuntimeError):
    """A front end cannot run: missing model, unreadable input, nothing found. One line, says what to do."""
