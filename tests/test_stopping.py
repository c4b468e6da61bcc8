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
