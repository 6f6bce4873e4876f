"""Errors a user can act on, and the one place that turns them into a one-line exit."""

from __future__ import annotations

import functools
import sys


class PipelineError(Exception):
    """A problem with the user's input or config; the message names what and where."""


class ConfigError(PipelineError):
    pass


class DataError(PipelineError):
    pass


class ClusterError(PipelineError):
    """A Spark job the cluster could not finish (a lost worker, too few slots)."""


def exits_cleanly(main):
    """Run a stage's main(); a PipelineError becomes one line on stderr and exit code 1."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)

    return wrapper
