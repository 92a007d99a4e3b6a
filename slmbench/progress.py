"""A small progress display for long sweeps (no dependency).

On a terminal: one line redrawn in place - config i/N, a bar, the current model and test,
elapsed time and an ETA from the configs finished so far.  Elsewhere (a log file, ssh without a
tty, CI): plain lines, one when a config starts, one per test, one when it ends, so a log tail
stays readable.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Progress of ``total`` configs, of which ``done`` were finished before (a resume)."""

    BAR = 20

    def __init__(self, total: int, done: int = 0, stream: IO[str] | None = None,
                 tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total = total
        self.position = done  # configs finished or started, for "i/N"
        self.durations: list[float] = []
        self.t0 = time.monotonic()
        self.label = ""
        self.note_text = ""
        self._test = ""
        self._config_t0 = 0.0
        self._lock = threading.Lock()
        self._drawn = False
        self._last_draw = 0.0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if self.tty:  # keep elapsed time moving while a long test runs
            self._ticker = threading.Thread(target=self._tick, name="slmbench-progress",
                                            daemon=True)
            self._ticker.start()

    # ------------------------------------------------------------------ events

    def start(self, label: str) -> None:
        with self._lock:
            self.position += 1
            self.label = label
            self.note_text = "starting"
            self._test = ""
            self._config_t0 = time.monotonic()
            if not self.tty:
                self._line(f"[{self.position}/{self.total}] {label}: started")
            self._draw(force=True)

    def note(self, message: str) -> None:
        """The current step of the config, e.g. 'loading', 'pp64 2/5'."""
        with self._lock:
            self.note_text = message
            test = message.split()[0] if message else ""
            new_test = bool(test) and test != self._test
            if new_test and not self.tty:
                self._line(f"[{self.position}/{self.total}] {self.label}: {message}")
            self._test = test
            self._draw(force=new_test)

    def finish(self, status: str, detail: str = "") -> float:
        """End the current config; returns its duration in seconds."""
        with self._lock:
            dt = time.monotonic() - self._config_t0
            self.durations.append(dt)
            text = f"[{self.position}/{self.total}] {self.label}: {status} in {dt:.1f} s"
            if detail:
                text += f" - {detail}"
            text += f" (elapsed {fmt_duration(self.elapsed)}, ETA {fmt_duration(self.eta)})"
            self._line(text)
            self.label, self.note_text = "", ""
            return dt

    def message(self, text: str) -> None:
        """A line of its own above the bar."""
        with self._lock:
            self._line(text)
            self._draw(force=True)

    def clear(self) -> None:
        """Remove the bar before someone else writes to the terminal (e.g. a download)."""
        with self._lock:
            self._erase()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        with self._lock:
            self._erase()

    # ------------------------------------------------------------------ figures

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    @property
    def eta(self) -> float | None:
        """Mean duration of the finished configs times those left (incl. the current one)."""
        if not self.durations:
            return None
        left = self.total - self.position + (1 if self.label else 0)
        mean = sum(self.durations) / len(self.durations)
        running = time.monotonic() - self._config_t0 if self.label else 0.0
        return max(0.0, left * mean - min(running, mean))

    def render(self, width: int = 100) -> str:
        frac = min(1.0, (self.position - (1 if self.label else 0)) / self.total) \
            if self.total else 1.0
        filled = int(round(frac * self.BAR))
        bar = "#" * filled + "-" * (self.BAR - filled)
        eta = fmt_duration(self.eta) if self.durations else "?"
        text = (f"[{self.position}/{self.total}] |{bar}| {self.label} {self.note_text} "
                f"| {fmt_duration(self.elapsed)} elapsed, ETA {eta}")
        return text[:width]

    # ------------------------------------------------------------------ drawing

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if self.label:
                    self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        try:
            import shutil

            width = shutil.get_terminal_size((100, 20)).columns - 1
        except Exception:  # noqa: BLE001
            width = 99
        self.stream.write("\r\033[K" + self.render(width))
        self.stream.flush()
        self._drawn = True

    def _erase(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False

    def _line(self, text: str) -> None:
        self._erase()
        self.stream.write(text + "\n")
        self.stream.flush()
