"""One error type for the whole tool, carrying its exit code; the CLI handles it in one place.

Every failure a user can meet is a `GeneratorError` (or a subclass): its message is already
phrased for a person (file, line, key, the fix), so the CLI prints `error: <message>` and exits
with `exit_code`, never a traceback.

Exit codes: 1 a job failed (build, refresh, a lock, drift found by `--check`); 2 bad input
(schedule, lock file, app.yaml, arguments).
"""

from __future__ import annotations


class GeneratorError(Exception):
    """A failure with a message for a person; exit code 1 unless a subclass says otherwise."""

    exit_code = 1

    def __init__(self, message: str | list[str]) -> None:
        self.problems = [message] if isinstance(message, str) else list(message)
        super().__init__("\n".join(self.problems))

    def lines(self) -> list[str]:
        """One entry per problem (a schedule can have many); the CLI prints each as `error: …`."""
        return self.problems or [type(self).__name__]


class InputError(GeneratorError):
    """Bad input (a file a person wrote, or an argument): exit code 2."""

    exit_code = 2
