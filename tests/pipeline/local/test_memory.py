"""Peak memory per component: this process's allocations and its worker processes' are both seen."""

import subprocess
import sys
import time

from pipeline.local.memory import BETWEEN, PeakMemory, resident_bytes

MIB = 2 ** 20


def test_each_component_gets_the_peak_seen_while_it_ran_children_included():
    current = [None]
    with PeakMemory(lambda: current[0], interval_s=0.05) as memory:
        time.sleep(0.2)
        current[0] = 'Transform'
        block = bytearray(300 * MIB)  # touched: resident, not only reserved
        block[::4096] = b'x' * len(block[::4096])
        time.sleep(0.4)
        del block
        current[0] = 'Trainer'
        worker = subprocess.Popen([sys.executable, '-c', 'import time; b = bytearray(400 * 2**20); '
                                   'b[::4096] = b"x" * len(b[::4096]); time.sleep(1.5)'])
        time.sleep(1.2)
        worker.wait()
        current[0] = None
        time.sleep(0.2)
    base = memory.peak_mb(BETWEEN)
    assert memory.peak_mb('Transform') >= base + 250, memory.summary_mb()
    assert memory.peak_mb('Trainer') >= base + 350, 'a worker process counts toward the component that started it'
    assert memory.summary_mb()['run'] == max(memory.summary_mb()[n] for n in ('Transform', 'Trainer', BETWEEN))
    assert memory.peak_mb('Evaluator') is None


def test_resident_bytes_of_this_process_is_plausible():
    import psutil
    assert 10 * MIB < resident_bytes(psutil.Process()) < 64 * 1024 * MIB
