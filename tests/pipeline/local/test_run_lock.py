"""One run per output directory: a second process is refused or waits; a dead holder frees the directory."""

import multiprocessing
import os
import time

import pytest

from pipeline.local import run_lock


def _hold(run_dir, seconds, ready):
    with run_lock.acquire(run_dir):
        ready.set()
        time.sleep(seconds)


@pytest.fixture
def holder(tmp_path):
    context = multiprocessing.get_context('spawn')
    ready = context.Event()
    process = context.Process(target=_hold, args=(str(tmp_path), 3.0, ready))
    process.start()
    assert ready.wait(60), 'the holder never got the lock'
    yield process
    process.join(30)


def test_a_second_run_is_refused_with_the_holders_pid(tmp_path, holder):
    with pytest.raises(run_lock.RunLockedError, match=f"another run is using {tmp_path}.*'pid': {holder.pid}|"
                                                      f'another run is using {tmp_path}.*"pid": {holder.pid}'):
        run_lock.acquire(str(tmp_path))


def test_a_second_run_can_wait_for_the_first(tmp_path, holder):
    start = time.monotonic()
    with run_lock.acquire(str(tmp_path), wait_s=60):
        waited = time.monotonic() - start
        assert waited > 1.0, "it got the lock while the holder still had it"
    assert waited < 60


def test_a_killed_holder_leaves_no_lock(tmp_path):
    context = multiprocessing.get_context('spawn')
    ready = context.Event()
    process = context.Process(target=_hold, args=(str(tmp_path), 600.0, ready))
    process.start()
    assert ready.wait(60)
    os.kill(process.pid, 9)
    process.join(30)
    with run_lock.acquire(str(tmp_path)):
        pass
