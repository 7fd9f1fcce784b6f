"""One local run at a time per output directory.

Two LocalDagRunner runs on one `metadata.db` and serving root (a scheduled retraining while someone runs
it by hand) would interleave their MLMD writes and their pushes. `acquire` takes an exclusive advisory
lock (`fcntl.flock`) on `<run_dir>/.run.lock`; the second run waits up to `wait_s` for it, then refuses
with a message naming the holder. The kernel drops the lock when its process dies, so a killed run
never leaves the directory locked.
"""

import contextlib
import fcntl
import json
import os
import time

LOCK_FILE = '.run.lock'
_POLL_S = 0.5


class RunLockedError(RuntimeError):
    """Another run holds the output directory."""


@contextlib.contextmanager
def _held(handle):
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def acquire(run_dir: str, wait_s: float = 0.0):
    """Locks `run_dir` for this process; use the result as a context manager that releases it.

    Args:
      run_dir: the pipeline's output directory (holds metadata.db and serving_model/).
      wait_s: seconds to wait for a run that holds it; 0 refuses at once.

    Returns:
      A context manager holding the lock.

    Raises:
      RunLockedError: still held by another run after `wait_s`, naming its process and start time.
    """
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, LOCK_FILE)
    handle = open(path, 'a+')
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.seek(0)
                holder = handle.read().strip() or 'another process'
                handle.close()
                raise RunLockedError(
                    f'another run is using {run_dir} ({holder}); wait for it, or pass --wait SECONDS, or use '
                    f'another --output_dir.') from None
            time.sleep(_POLL_S)
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({'pid': os.getpid(), 'started': time.strftime('%Y-%m-%d %H:%M:%S %Z')}))
    handle.flush()
    return _held(handle)
