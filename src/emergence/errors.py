"""User-facing errors: the CLI turns these into one line on stderr and exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (config, task file, CLI argument, checkpoint): one line, exit code 2."""
