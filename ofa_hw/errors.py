"""The base of every error that means "the user's input is wrong" (not a bug of ours).

The CLI prints such errors in one line and exits with status 2 instead of a traceback. Stage modules
derive their own error types from it (e.g. a stale LUT, an infeasible budget, a malformed profile).
"""


class UserError(Exception):
    """Bad input: a config value, a file, an arch or a budget that cannot work. Says what and where."""
