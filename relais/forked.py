"""Run one function in a forked child while this process goes on: the second core's work.

`relais check` plans on one core; meanwhile a child reads what the policies will need next
(the committed register of processing: tens of thousands of small files for a region).
The result comes back pickled through a pipe. It is only a shortcut: if the child cannot
start, fails or dies, the function runs here when its result is asked for, so errors are
raised (and reported) by this process exactly as without a child.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Callable
from contextlib import suppress
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """`fn()` computed in a forked child; `result()` waits for it, `close()` abandons it."""

    def __init__(self, fn: Callable[[], T], *, fork: bool = True, nice: int = 0) -> None:
        self._fn = fn
        self._pid = 0
        self._read = -1
        if fork and hasattr(os, "fork"):
            self._start(nice)

    def _start(self, nice: int) -> None:
        try:
            read_end, write_end = os.pipe()
        except OSError:  # out of file descriptors: computed here, later
            return
        try:
            pid = os.fork()
        except OSError:  # process limits
            os.close(read_end)
            os.close(write_end)
            return
        if pid == 0:  # the child: compute, send, leave without running the parent's cleanup
            status = 1
            try:
                os.close(read_end)
                if nice:  # yield the cores to the parent, take what it leaves idle
                    with suppress(OSError):
                        os.nice(nice)
                value = self._fn()
                # Bytes (a rendered report) go as they are, anything else pickled.
                kind, payload = (b"B", value) if isinstance(value, bytes) else (
                    b"P", pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
                os.write(write_end, kind)
                view = memoryview(payload)
                while view:
                    view = view[os.write(write_end, view):]
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        self._pid, self._read = pid, read_end

    def result(self) -> T:
        if self._pid:
            pid, self._pid = self._pid, 0
            with open(self._read, "rb") as pipe:
                kind = pipe.read(1)
                data = pipe.read()
            _, status = os.waitpid(pid, 0)
            if status == 0 and kind == b"B":
                return data  # type: ignore[return-value]  # what the function gave: bytes
            if status == 0 and kind == b"P":
                with suppress(pickle.UnpicklingError, EOFError, ValueError):
                    value: T = pickle.loads(data)
                    return value
        return self._fn()

    def close(self) -> None:
        """Stop the child if its result was not asked for (an error came first)."""
        if self._pid:
            pid, self._pid = self._pid, 0
            os.close(self._read)
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with suppress(ChildProcessError):
                os.waitpid(pid, 0)
