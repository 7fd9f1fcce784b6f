"""The one loop that times calls in turn: the Trainer's precision measurement and the benchmarks share it."""

import time
from typing import Callable, Dict, Hashable, List, Sequence


def turns(names: Sequence[Hashable], count: int, block: int = 1) -> List[Hashable]:
    """The order the calls are made in: `block` calls of each name in turn, until each has been called `count`
    times (the last turn takes what is left)."""
    order = []
    for start in range(0, count, block):
        for name in names:
            order += [name] * min(block, count - start)
    return order


def seconds_in_turn(calls: Dict[Hashable, Callable[[], object]], rounds: int, warmup: int = 1,
                    block: int = 1) -> Dict[Hashable, List[float]]:
    """Seconds of each call, `rounds` times, the calls taken in turn (`block` in a row each, `turns`) so that a
    slow phase of the machine hits them alike; `warmup` untimed rounds first (tracing, caches). A call returns
    when its work is done (read its tensors with `.numpy()`)."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    seconds = {name: [] for name in calls}
    for name in turns(list(calls), rounds, block):
        start = time.perf_counter()
        calls[name]()
        seconds[name].append(time.perf_counter() - start)
    return seconds
