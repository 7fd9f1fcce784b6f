"""Where a local run's memory goes: the peak resident memory while each component ran.

LocalDagRunner runs the components one after another in this process (Beam's DirectRunner too, unless
`--direct_num_workers` starts worker processes). `PeakMemory` samples the resident set of this process and
its children a few times a second and keeps, per component (the console's current one), the highest sum;
the console prints it on the component's line and the run summary stores it (`peak_rss_mb`).
"""

import threading
from typing import Callable, Dict, Optional

import psutil

BETWEEN = '(between components)'


def resident_bytes(process: psutil.Process) -> int:
    """Resident memory of `process` and all its descendants, in bytes (processes that ended are skipped)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total


class PeakMemory:
    """Samples memory every `interval_s` seconds in a daemon thread while used as a context manager.

    Args:
      current: the component running now (None between components).
      interval_s: seconds between samples.
    """

    def __init__(self, current: Callable[[], Optional[str]], interval_s: float = 0.25):
        self._current, self._interval_s = current, interval_s
        self.peaks: Dict[str, int] = {}
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._thread = threading.Thread(target=self._run, name='peak-memory', daemon=True)

    def __enter__(self) -> 'PeakMemory':
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            node = self._current() or BETWEEN
            rss = resident_bytes(self._process)
            if rss > self.peaks.get(node, 0):
                self.peaks[node] = rss
            self._stop.wait(self._interval_s)

    def peak_mb(self, node: str) -> Optional[float]:
        """The highest resident memory seen while `node` ran, in MiB (None: never sampled)."""
        return self.peaks[node] / 2 ** 20 if node in self.peaks else None

    def summary_mb(self) -> Dict[str, float]:
        """{component: peak MiB} and the run's overall peak under 'run'."""
        peaks = {node: round(value / 2 ** 20, 1) for node, value in self.peaks.items()}
        if peaks:
            peaks['run'] = max(peaks.values())
        return peaks
