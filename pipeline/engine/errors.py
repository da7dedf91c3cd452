"""User-facing errors: printed as one line by the CLI, never as a traceback (in a notebook too)."""


class UserError(Exception):
    """Something the user can fix (a setting, a file, a credential); the message says what to do."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback, so a Kaggle notebook cell fails with the one line too.
        return [f"{type(self).__name__}: {self}"]


class StageSkipped(Exception):
    """An optional stage cannot run here (e.g. no FID weights offline); chains report it and go on."""
