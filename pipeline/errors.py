"""Errors that reach the user as a clear message instead of a traceback."""


class UserError(Exception):
    """Something the user can fix: bad input data, a config typo, a failed gate."""


class DataError(UserError):
    """The input data cannot be read or used (missing folder, no classes, unreadable source)."""


class GateError(UserError):
    """A stage refused to run because an upstream check (anomalies, blessing) did not pass."""


class PipelineBusy(UserError):
    """Another visionpipe process holds the run root."""


class NotRegistered(Exception):
    """A stage did its share of the work but another process registers the result (e.g. a
    non-chief worker of multi-worker training). Not a failure: the run goes on without it."""
