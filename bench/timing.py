"""The benchmarks' timing loops, light to import: the micro-benchmarks need no TFMA, Beam or TFT.

Training is timed by calling each model's own Keras train function on an iterator the side keeps for the
whole run, never by `fit(iterator)`: `fit` wraps an iterator in a new autotuned `from_generator` dataset
per call, and destroying that dataset's iterator when `fit` returns waits for tf.data's autotune thread to
wake (10 ms x (2^k - 1) after the iterator started: 5.11 s, 10.23 s, ...), which stretched epochs to those
instants (`bench/results/epoch-stall-2026-11-27.md`).
"""

from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from modules.timing import seconds_in_turn, turns

# The loop lives in modules (the Trainer's precision measurement uses it); the benchmarks call it from here.
__all__ = ['seconds_in_turn', 'turns', 'interleaved_steps', 'batch_sizes', 'per_epoch', 'interleaved_epochs', 'add_ratios']


def interleaved_steps(models: Dict[str, object], iterators: Dict[str, Iterator], steps: int,
                      batch_size: int, block: int = 1) -> Tuple[Dict[str, Dict], Dict[str, Tuple]]:
    """First-step seconds per side, then `steps` timed steps per side, `block` at a time in turn, each side
    drawing its batches from its own iterator; also returns each side's (train function, iterator) for
    profiling. Models are compiled Keras models; one that has trained already reuses its traced function."""
    functions = {name: model.make_train_function() for name, model in models.items()}
    steps_of = {name: lambda name=name: functions[name](iterators[name])['loss'].numpy() for name in models}
    first = seconds_in_turn(steps_of, 1, warmup=0)
    print('first step (s): ' + ', '.join(f'{name} {s[0]:.2f}' for name, s in first.items()), flush=True)
    timed = seconds_in_turn(steps_of, steps, warmup=0, block=block)
    results = {name: {'first_step_s': round(first[name][0], 2), 'step_s': timed[name]} for name in models}
    for name, result in results.items():
        times = np.asarray(result['step_s'])
        result.update(median_step_s=float(np.median(times)), best_quartile_step_s=float(np.percentile(times, 25)),
                      images_per_s_median=batch_size / float(np.median(times)),
                      images_per_s_best_quartile=batch_size / float(np.percentile(times, 25)))
    return results, {name: (functions[name], iterators[name]) for name in models}


def batch_sizes(num_examples: int, batch_size: int, steps: int, partial_batches: bool = True) -> List[int]:
    """The sizes of the first `steps` batches of a `.batch().repeat()` pipeline (`partial_batches`, the
    tutorial's: each pass over the data ends with a partial batch) or of a `.repeat().batch()` one (all full)."""
    if not partial_batches or num_examples % batch_size == 0:
        return [batch_size] * steps
    one_pass = [batch_size] * (num_examples // batch_size) + [num_examples % batch_size]
    return [one_pass[i % len(one_pass)] for i in range(steps)]


def per_epoch(sizes: List[int], steps_per_epoch: int) -> List[int]:
    """Images of each run of `steps_per_epoch` batches."""
    return [sum(sizes[start:start + steps_per_epoch]) for start in range(0, len(sizes), steps_per_epoch)]


def interleaved_epochs(models: Dict[str, object], iterators: Dict[str, Iterator], epochs: int, steps_per_epoch: int,
                       batch_size: int, images: Optional[Dict[str, List[int]]] = None) -> Dict[str, Dict]:
    """Trains every side one epoch (`steps_per_epoch` steps in a row) at a time, in turn, each on its own
    iterator, after one first step per side (tracing), so machine noise hits all sides alike.

    Args:
      images: per side, the images of each timed epoch (`per_epoch(batch_sizes(...)[1:], ...)`: the first
        step is not one of them); default `steps_per_epoch * batch_size` each.

    Returns:
      name -> {'images_per_s': the median over the epochs after the first (warm-up: an input pipeline's cache
      fills in it) of each epoch's images per second, 'epoch_s': [...], 'first_step_s': ...}.
    """
    timed, _ = interleaved_steps(models, iterators, epochs * steps_per_epoch, batch_size, block=steps_per_epoch)
    results = {}
    for name, result in timed.items():
        steps = result['step_s']
        epoch_s = [sum(steps[start:start + steps_per_epoch]) for start in range(0, len(steps), steps_per_epoch)]
        counts = (images or {}).get(name) or [steps_per_epoch * batch_size] * len(epoch_s)
        rates = [count / seconds for count, seconds in zip(counts, epoch_s)]
        results[name] = {'images_per_s': float(np.median(rates[1:] or rates)), 'epoch_s': epoch_s,
                         'epoch_images': list(counts), 'first_step_s': result['first_step_s']}
    return results


def add_ratios(results: Dict[str, Dict], reference: str) -> Dict[str, Dict]:
    """Adds `vs_<reference>_median` and `vs_<reference>_best_quartile` (images/s over the reference side's)
    to every side of `interleaved_steps`' results; returns them."""
    for result in results.values():
        for figure in ('median', 'best_quartile'):
            result[f'vs_{reference}_{figure}'] = (result[f'images_per_s_{figure}']
                                                  / results[reference][f'images_per_s_{figure}'])
    return results
