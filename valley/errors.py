"""User-facing errors and the exit-code contract every `valley` workload command keeps.

Exit codes (the Jobs' podFailurePolicy reads them):
    0  done
    1  runtime error: retrying may help (pod eviction, a flaky download, out of disk)
    3  configuration error (`ConfigError`): the spec or arguments are wrong, retrying cannot help
"""

from __future__ import annotations

#: exit code of a configuration error; the rendered Jobs fail at once on it instead of retrying
CONFIG_ERROR_EXIT = 3


class ValleyError(Exception):
    """An error the user can fix: printed as one line naming the field or object and the fix."""


class ConfigError(ValleyError):
    """The run spec or the arguments are wrong; retrying cannot help (exit code 3)."""


def one_line(error: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        return validation_error_line(error)
    if isinstance(error, ValleyError):
        return str(error)
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return f"{error.strerror}: {error.filename}"
    return f"{type(error).__name__}: {error} (set VALLEY_DEBUG=1 for the traceback)"


def exit_code(error: BaseException) -> int:
    return CONFIG_ERROR_EXIT if isinstance(error, ConfigError) else 1


def validation_error_line(error: Exception) -> str:
    """One line naming the field and what is allowed, from a pydantic ValidationError."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"] if not str(p).startswith("function-"))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "literal_error":
            message = f"got {item['input']!r}; {message[:1].lower()}{message[1:]}"  # allowed values keep their case
        parts.append(f"{where}: {message}" if where and not message.startswith(f"{where}:") else message)
    return "; ".join(parts)
