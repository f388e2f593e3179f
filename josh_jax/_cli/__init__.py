"""Internals shared by the command-line tools: atomic outputs, one-line argument
checks, Ctrl-C handling. Not public API."""
