"""parley.Error: every negative return code of the C API, raised as one exception type.

The C API reports failures as negative PARLEY_ERR_* codes with two strings: a fixed
description (parley_strerror) and a detailed message of the last failure on the calling
thread (parley_last_error_message: which file, which field). Both are captured right after
the failing call, on the same thread, because the detailed message is thread-local and only
valid until the next parley call.
"""

from __future__ import annotations

from typing import Optional, Union

from ._enums import ErrorCode, enum_or_int
from ._native import lib


class Error(Exception):
    """A parley failure.

    Attributes:
        code: the negative PARLEY_ERR_* code (an ErrorCode, or a plain int for a code newer
            than this binding).
        name: the header's name of the code (parley_error_name), e.g.
            "PARLEY_ERR_FINGERPRINT_INVALID".
        description: parley_strerror(code).
        detail: parley_last_error_message() at the time of the failure ("" if none).
    """

    code: Union[ErrorCode, int]
    name: str
    description: str
    detail: str

    def __init__(self, code: int, detail: str = "", function: Optional[str] = None) -> None:
        self.code = enum_or_int(ErrorCode, code)
        # The library's own spelling (parley_error_name), so a code newer than this
        # binding's ErrorCode still gets its name; "unknown" only for numbers it lacks too.
        name = lib.error_name(code).decode(errors="replace")
        self.name = name if name.startswith("PARLEY_") else f"PARLEY_ERR_UNKNOWN({code})"
        self.description = lib.strerror(code).decode(errors="replace")
        self.detail = detail
        self.function = function
        message = f"{self.name}: {self.description}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)

    def __reduce__(self):  # picklable despite the custom __init__
        return (Error, (int(self.code), self.detail, self.function))


def check(rc: int, function: str, detailed: bool = True) -> int:
    """Returns `rc` if it is not negative, else raises Error.

    `detailed` False for the real-time functions (push/pull/set_muted), which set no detailed
    message: parley_last_error_message would then describe an older, unrelated failure.
    """
    if rc >= 0:
        return rc
    detail = lib.last_error_message().decode(errors="replace") if detailed else ""
    raise Error(rc, detail, function)
