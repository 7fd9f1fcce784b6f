"""The one loop that times calls in turn: the Trainer's precision measurement and the benchmarks share it."""

import time
from typing import Callable, Dict, Hashable, List


def seconds_in_turn(calls: Dict[Hashable, Callable[[], object]], rounds: int,
                    warmup: int = 1) -> Dict[Hashable, List[float]]:
    """Seconds of each call, `rounds` times, the calls taken in turn within each round so that a slow phase of
    the machine hits them alike; `warmup` untimed rounds first (tracing, caches). A call returns when its work
    is done (read its tensors with `.numpy()`)."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    return seconds
