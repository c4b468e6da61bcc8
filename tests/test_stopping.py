import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest

from rnn_cli import seeds, stopping


def test_a_stop_signal_outside_fit_raises_at_once_and_the_handlers_are_handed_back():
    before = {signum: signal.getsignal(signum) for signum in stopping.STOP_SIGNALS}
    for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        with pytest.raises(KeyboardInterrupt), stopping.stop_signals():
            signal.raise_signal(signum)
        assert stopping.stop_exit_code() == code
    assert {signum: signal.getsignal(signum) for signum in stopping.STOP_SIGNALS} == before
    stopping.raise_if_stopped()  # nothing pending once the block is left


def test_during_fit_a_stop_waits_for_the_end_of_the_batch():
    reached = []
    with pytest.raises(KeyboardInterrupt), stopping.stop_signals(), stopping.deferred():
        signal.raise_signal(signal.SIGTERM)
        reached.append("rest of the batch")  # the signal did not interrupt this
        stopping.raise_if_stopped()  # the batch's end
        reached.append("next batch")
    assert reached == ["rest of the batch"]
    assert stopping.stop_exit_code() == 143


def test_a_deferral_inside_fit_leaves_the_stop_to_fit():
    reached = []
    with pytest.raises(KeyboardInterrupt), stopping.stop_signals(), stopping.deferred():
        with stopping.deferred():  # a file written during fit (the run's history)
            signal.raise_signal(signal.SIGTERM)
        reached.append("after the file")  # the inner block's end did not raise it
        signal.raise_signal(signal.SIGTERM)  # a second signal: raised at once, as outside fit
    assert reached == ["after the file"]


def test_a_stop_in_the_last_steps_of_fit_is_raised_when_fit_ends():
    with pytest.raises(KeyboardInterrupt), stopping.stop_signals():
        with stopping.deferred():
            signal.raise_signal(signal.SIGINT)
        pytest.fail("went on after fit as if not stopped")


def test_a_second_signal_raises_at_once_or_is_ignored_as_asked():
    with pytest.raises(KeyboardInterrupt), stopping.stop_signals(), stopping.deferred():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # the user presses Ctrl-C again: out now
        pytest.fail("a second Ctrl-C did not stop at once")
    with pytest.raises(KeyboardInterrupt), stopping.stop_signals(again="ignore"), stopping.deferred():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # a seed: the group passing on the same Ctrl-C
        stopping.raise_if_stopped()


def stubborn_seed(sender, config, run_dir, options):
    """A seed's process that is slow to stop: it ignores the Ctrl-C the group passes on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sender.send(("echo", "ready"))
    time.sleep(60)


def test_a_second_sigterm_makes_a_seed_group_stop_waiting_and_record_it(monkeypatch, tmp_path):
    monkeypatch.setattr(seeds, "_train_child", stubborn_seed)

    def terminate_twice(line):  # once the seed has started: two SIGTERMs, as from an impatient kill
        os.kill(os.getpid(), signal.SIGTERM)  # passed on to the seed, which goes on
        os.kill(os.getpid(), signal.SIGTERM)  # this one must stop the group, not kill it unrecorded

    try:
        with pytest.raises(KeyboardInterrupt):
            seeds.train_isolated(None, tmp_path, echo=terminate_twice)
        assert stopping.stop_exit_code() == 143
    finally:
        for child in multiprocessing.active_children():
            child.kill()
            child.join()


def test_a_second_ctrl_c_ends_a_process_stuck_in_a_long_native_call():
    # XLA compiling a model keeps Python from running the handler for many seconds; a big matrix product is
    # such a call (tens of seconds on 2 cores), and the second Ctrl-C must not wait for its end.
    script = ("import numpy as np\nfrom rnn_cli.stopping import stop_signals\na = np.ones((9000, 9000))\n"
              "with stop_signals():\n    print('ready', flush=True)\n    a @ a\n    print('finished', flush=True)\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    assert process.wait(timeout=60) == 130
    assert time.monotonic() - started < stopping.SECOND_SIGNAL_GRACE + 2
    assert process.stdout.read() == ""  # it did not wait for the product


# A command whose stop lands in Python code that C code ran with PyRun_String, as TensorFlow's extensions run
# some: CPython then counts the KeyboardInterrupt as never handled and, at its own exit, ends the process by
# SIGINT (-2) whatever code the command exits with; seen under load as `rnn train` built its model.
STOP_IN_RUN_STRING = '''\
import ctypes
from rnn_cli import cli


@cli.main.command()
def stuck():
    run_string = ctypes.pythonapi.PyRun_String
    run_string.restype = ctypes.py_object
    run_string.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
    names = {}
    run_string(b"import os, signal\\nos.kill(os.getpid(), signal.SIGTERM)\\nwhile True: pass", 257, names, names)


if __name__ == "__main__":
    cli.run()
'''


def test_a_stop_that_passed_through_c_code_still_ends_the_process_with_its_code(tmp_path):
    (tmp_path / "stuck_cli.py").write_text(STOP_IN_RUN_STRING, encoding="utf-8")
    ended = subprocess.run([sys.executable, "-m", "stuck_cli", "stuck"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
    assert ended.returncode == 143, ended.stderr
    assert ended.stderr.strip().splitlines() == ["interrupted"]
    from importlib.metadata import entry_points

    assert entry_points(group="console_scripts")["rnn"].value == "rnn_cli.cli:run"  # the `rnn` command ends so


def test_a_stop_that_python_drops_is_quiet_and_raised_when_the_block_ends():
    # Raised in a garbage collector's callback (JAX adds one to every collection), Python drops the
    # KeyboardInterrupt and prints its traceback; the stop must neither print it nor be lost.
    script = ("import gc, signal\nfrom rnn_cli.stopping import stop_signals\n"
              "def callback(phase, info):\n    if phase == 'start':\n        signal.raise_signal(signal.SIGTERM)\n"
              "gc.callbacks.append(callback)\n"
              "try:\n    with stop_signals():\n        gc.collect()\n        print('went on', flush=True)\n"
              "except KeyboardInterrupt:\n    print('stopped', flush=True)\n")
    ended = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert ended.stdout.split() == ["went", "on", "stopped"] and ended.stderr == "", ended.stderr
