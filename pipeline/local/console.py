"""The console of a local run: a line per component as it starts and ends, training progress, errors.

TensorFlow, absl, Beam and AutoGraph write hundreds of lines a person does not need. `RunConsole` sends
all of it (Python logging, and whatever C++ code writes to file descriptors 1 and 2) to a log file and
keeps the terminal for what matters: `Trainer ... ran in 52 s: val pixel accuracy 0.91`. It recognizes
LocalDagRunner's own "Component X is running/finished" records and the Trainer's progress records
(`modules.train.PROGRESS_LOGGER`); a callback says what each finished component did. With `verbose`
nothing is redirected and these lines are printed among the full stream.
"""

import logging
import os
import sys
import time
from typing import Callable, Dict, Optional, TextIO, Tuple

from absl import logging as absl_logging

from modules.hparams import PROGRESS_LOGGER

_RUNNING = 'Component %s is running.'
_FINISHED = 'Component %s is finished.'
_LOG_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'

# (node id) -> (state, one-line figure): what a finished component did, read back from MLMD.
Describe = Callable[[str], Tuple[str, str]]


class _Handler(logging.Handler):
    def __init__(self, console: 'RunConsole'):
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.msg == _RUNNING and record.args:
                self._console.started(str(record.args[0]))
            elif record.msg == _FINISHED and record.args:
                self._console.finished(str(record.args[0]))
            elif record.name == PROGRESS_LOGGER:
                self._console.print(f'    {record.getMessage()}')
        except Exception:  # the console must never break a run; the log has everything anyway
            self.handleError(record)


class RunConsole:
    """Context manager that routes a run's output to `log_path` and prints the few lines a person reads.

    Args:
      log_path: the full log, appended to.
      describe: callback giving (state, figure) of a finished component.
      verbose: keep the full stream on the terminal (nothing is redirected).
      skip_nodes: node ids not worth a line (resolvers).
      peak_mb: callback giving the peak resident memory (MiB) while a component ran, shown on its line.
    """

    def __init__(self, log_path: str, describe: Optional[Describe] = None, verbose: bool = False,
                 skip_nodes: Callable[[str], bool] = lambda node: node.endswith('resolver'),
                 peak_mb: Optional[Callable[[str], Optional[float]]] = None):
        self.log_path = log_path
        self._describe = describe
        self._peak_mb = peak_mb
        self._verbose = verbose
        self._skip = skip_nodes
        self._started: Dict[str, float] = {}
        self.current: Optional[str] = None
        self._out: TextIO = sys.stdout

    def __enter__(self) -> 'RunConsole':
        os.makedirs(os.path.dirname(self.log_path) or '.', exist_ok=True)
        self._log = open(self.log_path, 'a', buffering=1)
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved_fds = (os.dup(1), os.dup(2))
        self._out = os.fdopen(os.dup(1), 'w', buffering=1)
        if not self._verbose:
            os.dup2(self._log.fileno(), 1)
            os.dup2(self._log.fileno(), 2)
        root = logging.getLogger()
        self._log_handler = logging.StreamHandler(sys.stderr)
        self._log_handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        self._handler = _Handler(self)
        root.addHandler(self._log_handler)
        root.addHandler(self._handler)
        self._root_level = root.level
        root.setLevel(logging.INFO)
        absl_logging.set_verbosity(absl_logging.INFO)
        return self

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        root.removeHandler(self._handler)
        root.removeHandler(self._log_handler)
        root.setLevel(self._root_level)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved_fds[0], 1)
        os.dup2(self._saved_fds[1], 2)
        for fd in self._saved_fds:
            os.close(fd)
        self._out.flush()
        self._out.close()
        self._out = sys.stdout
        self._log.close()

    def print(self, line: str = '') -> None:
        """Prints to the terminal (and records the line in the log)."""
        print(line, file=self._out, flush=True)
        if not self._verbose and not self._log.closed:
            self._log.write(f'[console] {line}\n')

    def started(self, node: str) -> None:
        self.current = node
        self._started[node] = time.monotonic()
        if not self._skip(node):
            self.print(f'{node:<18} started')

    def finished(self, node: str) -> None:
        seconds = time.monotonic() - self._started.get(node, time.monotonic())
        self.current = None
        if self._skip(node):
            return
        state, figure = self._describe(node) if self._describe else ('ran', '')
        peak = self._peak_mb(node) if self._peak_mb else None
        memory = f', peak {peak / 1024:.1f} GB' if peak is not None and state == 'ran' else ''
        self.print(f'{node:<18} {state} in {seconds:.0f} s{memory}' + (f': {figure}' if figure else ''))

    def failed(self, error: BaseException) -> None:
        """Prints which component failed, why, and where the full log is."""
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        where = self.current or 'the pipeline'
        logging.getLogger(__name__).error('%s failed', where, exc_info=error)
        self.print(f'{where:<18} FAILED: {type(error).__name__}: {reason}')
        self.print(f'Full log: {self.log_path}')
