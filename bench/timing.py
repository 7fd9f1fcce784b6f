"""The benchmarks' timing loops, light to import: the micro-benchmarks need no TFMA, Beam or TFT.

Training is timed by calling each model's own Keras train function on an iterator the side keeps for the
whole run, never by `fit(iterator)`: `fit` wraps an iterator in a new autotuned `from_generator` dataset
per call, and destroying that dataset's iterator when `fit` returns waits for tf.data's autotune thread to
wake (10 ms x (2^k - 1) after the iterator started: 5.11 s, 10.23 s, ...), which stretched epochs to those
instants (`bench/results/epoch-stall-2026-11-27.md`).
"""

from typing import Dict, Iterator, Tuple

import numpy as np

from modules.timing import seconds_in_turn, turns

# The loop lives in modules (the Trainer's precision measurement uses it); the benchmarks call it from here.
__all__ = ['seconds_in_turn', 'turns', 'interleaved_steps', 'interleaved_epochs', 'add_ratios']


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


def interleaved_epochs(models: Dict[str, object], iterators: Dict[str, Iterator], epochs: int, steps_per_epoch: int,
                       batch_size: int) -> Dict[str, Dict]:
    """Trains every side one epoch (`steps_per_epoch` steps in a row) at a time, in turn, each on its own
    iterator, after one first step per side (tracing), so machine noise hits all sides alike.

    Returns:
      name -> {'images_per_s': from the median epoch after the first (warm-up: an input pipeline's cache fills
      in it), 'epoch_s': [...], 'first_step_s': ...}.
    """
    timed, _ = interleaved_steps(models, iterators, epochs * steps_per_epoch, batch_size, block=steps_per_epoch)
    results = {}
    for name, result in timed.items():
        steps = result['step_s']
        epoch_s = [sum(steps[start:start + steps_per_epoch]) for start in range(0, len(steps), steps_per_epoch)]
        results[name] = {'images_per_s': steps_per_epoch * batch_size / float(np.median(epoch_s[1:] or epoch_s)),
                         'epoch_s': epoch_s, 'first_step_s': result['first_step_s']}
    return results


def add_ratios(results: Dict[str, Dict], reference: str) -> Dict[str, Dict]:
    """Adds `vs_<reference>_median` and `vs_<reference>_best_quartile` (images/s over the reference side's)
    to every side of `interleaved_steps`' results; returns them."""
    for result in results.values():
        for figure in ('median', 'best_quartile'):
            result[f'vs_{reference}_{figure}'] = (result[f'images_per_s_{figure}']
                                                  / results[reference][f'images_per_s_{figure}'])
    return results
