"""One child process of the control plane: started in its own session, logged to a file, stopped by PID."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from cni_migrate_testbed.errors import ComponentStartError

_PR_SET_PDEATHSIG = 1
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
except OSError:  # pragma: no cover - no libc to load
    _LIBC = None


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the parent dies, even if it was SIGKILLed itself."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ManagedProcess:
    def __init__(
        self, name: str, argv: list[str], log_path: Path, cwd: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.env = dict(env) if env is not None else None
        self.argv = argv
        self.log_path = log_path
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        """Start the child in its own session, output to the log file.

        Started from the main thread, the child also gets SIGKILL if this process dies without stopping it
        (``PR_SET_PDEATHSIG``; Linux ties that signal to the starting *thread*, hence main thread only).
        """
        if self._popen is not None:
            raise RuntimeError(f"{self.name} already started")
        self._log = self.log_path.open("ab")
        self._log.write(f"# {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env=self.env,
            start_new_session=True,  # a Ctrl-C at the terminal reaches us, not our children
            close_fds=True,
            # The hook only calls prctl(2) through a libc handle loaded beforehand: no lock, no import.
            preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,  # noqa: PLW1509
        )

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def tail(self, lines: int = 40) -> str:
        try:
            with self.log_path.open("rb") as f:
                last = deque(f, maxlen=lines)
        except FileNotFoundError:
            return "(no log file)"
        return b"".join(last).decode("utf-8", errors="replace").rstrip()

    def log_contains(self, text: str) -> bool:
        try:
            return text.encode() in self.log_path.read_bytes()
        except FileNotFoundError:
            return False

    def start_error(self, reason: str) -> ComponentStartError:
        return ComponentStartError(self.name, reason, self.log_path, self.tail())

    def check_alive(self) -> None:
        """Raise :class:`ComponentStartError` if the process has exited."""
        code = self.returncode()
        if code is not None:
            raise self.start_error(f"exited with status {code} during startup")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; always reaps the child."""
        popen = self._popen
        if popen is not None:
            if popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(popen.pid, signal.SIGTERM)
                try:
                    popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(popen.pid, signal.SIGKILL)
                    popen.wait()
            else:
                popen.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
