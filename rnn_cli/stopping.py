"""Ctrl-C and SIGTERM stop a training where it can record how far it got.

Inside `stop_signals()`, SIGINT (Ctrl-C) and SIGTERM (`kill`, `timeout`, a batch system's time
limit) raise KeyboardInterrupt, which `rnn_cli.training.train` catches to record the run as interrupted
(and resumable) before passing it on. While Keras runs batches (`deferred()`: `fit`, the test
evaluation), the signal only sets a flag and the training raises the KeyboardInterrupt itself at the
next batch's end (`raise_if_stopped`, called by a callback): raised wherever Python happens to be,
it can land inside TensorFlow, in Python code its C++ calls (which drops it) or while tf.data builds
an epoch's iterator, where it was seen to corrupt the heap ("free(): invalid next size"), aborting
the process before it recorded anything. Elsewhere (loading data, saving) it is raised at once. This
module does not import TensorFlow: the process that waits for a seed group's seeds uses it too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from typing import NoReturn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Seconds a process may still take, after a second stop signal, before it ends without its clean-up: Python
# runs a signal's handler only between two of its own steps, which a long native call (XLA compiling a
# model, for one) can keep from coming for many seconds.
SECOND_SIGNAL_GRACE = 2.0
_STOPPED = threading.Event()  # a stop signal came, and the training has not yet stopped for it
_TERMINATED = threading.Event()  # the stop was a SIGTERM (kept after the block: stop_exit_code)
_DEFERRING = threading.Event()  # inside deferred(): the stop waits for the next batch's end


@contextlib.contextmanager
def stop_signals(again: str = "raise"):
    """Inside the block SIGINT and SIGTERM stop a training (KeyboardInterrupt, see the module).

    A second signal: "raise" raises at once (a user who presses Ctrl-C again wants out now);
    "ignore" drops it (a seed's process, to which the group passes on the Ctrl-C the terminal gave
    them both).
    """
    _STOPPED.clear()
    _TERMINATED.clear()

    def stop(signum, frame):
        note(signum)
        if _STOPPED.is_set():
            if again == "raise":
                raise KeyboardInterrupt
            return
        _STOPPED.set()
        if not _DEFERRING.is_set():
            raise KeyboardInterrupt

    previous = handle_signals(dict.fromkeys(STOP_SIGNALS, stop))
    watch = watch_second_signal() if again == "raise" and previous is not None else contextlib.nullcontext()
    unraisable = sys.unraisablehook
    sys.unraisablehook = _quiet_stops(unraisable)
    try:
        with watch:
            yield
            raise_if_stopped()  # a stop that Python dropped (`_quiet_stops`) ends the block as a raised one does
    finally:
        sys.unraisablehook = unraisable
        handle_signals(previous)
        _STOPPED.clear()


def _quiet_stops(hook):
    """`hook`, but silent on the KeyboardInterrupt of a stop raised where Python drops what is raised (a
    garbage collector's callback, a `__del__`: JAX, which TensorFlow imports when it is installed, adds a
    callback to every collection). The stop is not lost: it is noted, and a training raises it at its next
    batch's end (`raise_if_stopped`); without this Python prints a traceback that says nothing to a user."""

    def quiet(unraisable):
        if not (_STOPPED.is_set() and isinstance(unraisable.exc_value, KeyboardInterrupt)):
            hook(unraisable)

    return quiet


@contextlib.contextmanager
def deferred():
    """Inside the block (model.fit, the test evaluation, creating a temporary file) a stop signal waits for
    `raise_if_stopped`; one that came during the block's last steps is raised when it ends. Inside another
    such block it changes nothing: the outer block's end, or its batch's, raises it. A stop already raised
    before the block (a run recording that it was interrupted) is not raised again at its end."""
    outer, before = _DEFERRING.is_set(), _STOPPED.is_set()
    _DEFERRING.set()
    try:
        yield
    finally:
        if not outer:
            _DEFERRING.clear()
    if not outer and not before:
        raise_if_stopped()


@contextlib.contextmanager
def watch_second_signal():
    """A thread that ends the process SECOND_SIGNAL_GRACE seconds after a second stop signal, if it has not
    ended by then. It learns of each signal as it arrives (Python's wakeup file descriptor), not when the main
    thread gets round to running the handler."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        os.close(read_end)
        os.close(write_end)
        yield
        return

    def watch():
        seen = 0
        while chunk := os.read(read_end, 16):
            for signum in chunk:
                seen += signum in STOP_SIGNALS
                if seen >= 2:
                    ended.wait(SECOND_SIGNAL_GRACE)
                    if not ended.is_set():
                        note(signum)
                        os._exit(stop_exit_code())

    ended = threading.Event()
    watcher = threading.Thread(target=watch, name="second-signal", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        ended.set()
        signal.set_wakeup_fd(previous)
        os.close(write_end)  # the watcher reads the end of the pipe and returns
        watcher.join(timeout=SECOND_SIGNAL_GRACE + 1)
        os.close(read_end)


def raise_if_stopped() -> None:
    """KeyboardInterrupt if a stop signal came: a training calls this at the end of every batch."""
    if _STOPPED.is_set():
        raise KeyboardInterrupt


class StopExit(SystemExit):
    """The end of a command that a stop signal ended; its code is `stop_exit_code()`. The `rnn` process
    ends with it by `end_process`."""


def exit_stopped() -> NoReturn:
    """End the command as the stop signal asks: StopExit with 130 (Ctrl-C) or 143 (SIGTERM)."""
    raise StopExit(stop_exit_code())


def end_process(code: int) -> NoReturn:
    """End the process now with `code`, after what Python's own exit runs that matters here (the atexit
    functions: multiprocessing's, logging's; the standard streams flushed). Python's own exit can turn a
    stop's 130 or 143 into death by SIGINT (a return code of -2 to the process that started it): CPython
    counts a KeyboardInterrupt as never handled once it passed through code that a C extension ran with
    `PyRun_String`, even though `rnn` caught it (seen under load: a SIGTERM in `rnn train`'s first seconds)."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing left to flush
            stream.flush()
    os._exit(code)


def stop_exit_code() -> int:
    """The shell's code for the signal that stopped the training: 128 + its number (130 Ctrl-C,
    143 SIGTERM)."""
    return 128 + (signal.SIGTERM if _TERMINATED.is_set() else signal.SIGINT)


def note(signum: int) -> None:
    """Remember a SIGTERM, for `stop_exit_code`."""
    if signum == signal.SIGTERM:
        _TERMINATED.set()


def handle_signals(handlers: dict | None) -> dict | None:
    """Install handlers ({signal: handler}) and return those they replace; None (nothing done)
    outside the main thread, where Python cannot set signal handlers."""
    if handlers is None or threading.current_thread() is not threading.main_thread():
        return None
    return {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
