"""Ctrl-C under `aictl task execute`: the first SIGINT asks the run to stop (a flag), the
second aborts at once; the previous handler is back afterwards."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from aictl.cli.common import interrupt_cancels


def test_the_first_sigint_sets_the_flag_and_the_second_aborts() -> None:
    before = signal.getsignal(signal.SIGINT)
    cancel = threading.Event()
    with pytest.raises(KeyboardInterrupt), interrupt_cancels(cancel):
        os.kill(os.getpid(), signal.SIGINT)
        assert cancel.wait(5), "the first Ctrl-C did not set the flag"
        os.kill(os.getpid(), signal.SIGINT)
        threading.Event().wait(5)  # the handler raises here, in the main thread
    assert signal.getsignal(signal.SIGINT) is before


def test_called_from_a_thread_it_installs_nothing() -> None:
    before = signal.getsignal(signal.SIGINT)
    seen: list[object] = []

    def body() -> None:
        with interrupt_cancels(threading.Event()):
            seen.append(signal.getsignal(signal.SIGINT))

    worker = threading.Thread(target=body)
    worker.start()
    worker.join(30)
    assert seen == [before]
