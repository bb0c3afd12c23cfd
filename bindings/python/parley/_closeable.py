"""The context-manager and finaliser protocol every handle class (Identity, Context, Call,
Room) shares: ``with`` closes the handle, and so does garbage collection."""

from __future__ import annotations

from typing import TypeVar

_T = TypeVar("_T", bound="Closeable")


class Closeable:
    def close(self) -> None:  # each handle class frees its C handle here (idempotent)
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass
