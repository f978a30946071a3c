"""Errors a user can cause. The CLI catches `MwevalError` once and exits 2 with its one-line message."""

from __future__ import annotations


class MwevalError(Exception):
    """A bad input, named: `where` is a file (and line) when there is one."""

    def __init__(self, message: str, where: str | None = None):
        self.message, self.where = message, where
        super().__init__(f"{where}: {message}" if where else message)

    @property
    def one_line(self) -> str:
        return " ".join(str(self).split())
