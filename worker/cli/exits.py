"""Exit codes of the operator commands and the one error type they raise."""

from __future__ import annotations

OK = 0
FAILED = 1  # the system answered, and the answer is bad (rejected, canceled, unhealthy, timeout)
INVALID = 2  # the command line or the request breaks a rule (same validation as the worker)
UNREACHABLE = 3  # RabbitMQ or the database cannot be reached, or the namespace does not exist
NOT_FOUND = 4  # unknown parent order or dead letter

CODES_HELP = (
    "Exit codes: 0 ok; 1 failed (rejected, canceled, unhealthy, timed out); 2 invalid input; "
    "3 RabbitMQ or database unreachable; 4 not found."
)


class CliError(Exception):
    """One line for the operator and the exit code that goes with it."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
