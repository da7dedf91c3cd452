"""User-facing errors: printed as one line by the CLI, never as a traceback."""


class UserError(Exception):
    """Something the user can fix (a setting, a file, a credential); the message says what to do."""


class StageSkipped(Exception):
    """An optional stage cannot run here (e.g. no FID weights offline); chains report it and go on."""
