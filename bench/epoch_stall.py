"""What stretched benchmark epochs to a fixed 5.1 or 10.3 s: Keras `fit(iterator)` and tf.data's autotune thread.

    .venv/bin/python -m bench.epoch_stall                  # ~9 min on 2 CPU cores (epochs of ~7.5 s)
    .venv/bin/python -m bench.epoch_stall --epochs 2 --steps 2 --batch_size 4   # smoke

One small convolution net trains epoch after epoch on a repeating, autotuned `tf.data` pipeline whose
iterator is kept for the whole run, in four ways (each its own model, the ways taken in turn epoch by epoch):

- `fit_iterator`: `model.fit(iterator, epochs=1, steps_per_epoch=N)`, as `bench.run` did until 2026-11-27.
  Keras wraps the iterator in a new `from_generator(...).prefetch(AUTOTUNE)` dataset on every call;
- `fit_wrapper_autotune` / `fit_wrapper_no_autotune`: that wrapper made by hand, with tf.data autotuning on
  or off, passed to `fit` as a dataset;
- `train_function`: N calls of the model's own Keras train function on the kept iterator, what `fit` does
  inside an epoch, and what `bench/timing.py` does now.

An epoch counts as stalled where it ended in the 0.4 s after one of the autotune thread's wake-ups (10 ms x
(2^k - 1) after the epoch's iterator started, which is a little after the epoch's start: 5.11 s, 10.23 s,
20.47 s) and took over 15% more than the way's fastest epoch. Writes `bench/results/epoch-stall-<date>.json` and `.md`, with the CPU kind.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import argparse  # noqa: E402
from typing import Callable, Dict, List, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from bench import results_file, timing  # noqa: E402
from bench.results_file import RESULTS_DIR  # noqa: E402

WAYS = ('fit_iterator', 'fit_wrapper_autotune', 'fit_wrapper_no_autotune', 'train_function')
WAKE_UPS_S = tuple(0.01 * (2 ** k - 1) for k in range(9, 13))  # 5.11, 10.23, 20.47, 40.95
# The iterator starts after `fit` has built its data adapter, and its teardown follows the wake-up.
WAKE_UP_WINDOW_S = 0.4
STALL_FACTOR = 1.15


def batches(batch_size: int, size: int, seed: int = 0) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    images = rng.random((16 * batch_size, size, size, 3), dtype=np.float32)
    masks = rng.integers(0, 3, (16 * batch_size, size, size, 1))
    return tf.data.Dataset.from_tensor_slices((images, masks)).cache().shuffle(8 * batch_size).batch(
        batch_size, drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE)


def small_net(size: int, layers: int, width: int) -> keras.Model:
    inputs = keras.Input([size, size, 3])
    hidden = inputs
    for _ in range(layers):
        hidden = keras.layers.Conv2D(width, 3, padding='same', activation='relu')(hidden)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(hidden))
    model.compile('adam', keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def epoch_runner(way: str, model: keras.Model, iterator, steps: int, spec) -> Callable[[], None]:
    """One epoch of `steps` steps the given way, on the kept iterator."""
    if way == 'fit_iterator':
        return lambda: model.fit(iterator, epochs=1, steps_per_epoch=steps, verbose=0)
    if way.startswith('fit_wrapper'):
        def run():
            wrapper = tf.data.Dataset.from_generator(lambda: iterator, output_signature=spec).prefetch(1).prefetch(
                tf.data.AUTOTUNE)
            options = tf.data.Options()
            options.autotune.enabled = way == 'fit_wrapper_autotune'
            model.fit(wrapper.with_options(options), epochs=1, steps_per_epoch=steps, verbose=0)
        return run
    train_function = model.make_train_function()

    def run():
        for _ in range(steps):
            train_function(iterator)
        model.optimizer.iterations.numpy()  # the steps have run
    return run


def stalled(epoch_s: Sequence[float]) -> List[bool]:
    fastest = min(epoch_s)
    return [seconds > STALL_FACTOR * fastest and any(wake <= seconds <= wake + WAKE_UP_WINDOW_S for wake in WAKE_UPS_S)
            for seconds in epoch_s]


def measure(epochs: int, steps: int, batch_size: int, size: int, layers: int, width: int,
            ways: Sequence[str] = WAYS) -> Dict[str, Dict]:
    """Epoch seconds per way (the first epoch, with tracing, left out) and which of them stalled."""
    dataset = batches(batch_size, size)
    runners = {}
    for way in ways:
        keras.utils.set_random_seed(0)
        runners[way] = epoch_runner(way, small_net(size, layers, width), iter(dataset), steps, dataset.element_spec)
    # The warm-up epoch traces, fills the cache and the shuffle buffer.
    seconds = timing.seconds_in_turn(runners, epochs, warmup=1)
    return {way: {'epoch_s': values, 'stalled': stalled(values), 'stalled_epochs': sum(stalled(values)),
                  'median_epoch_s': float(np.median(values)), 'fastest_epoch_s': min(values)}
            for way, values in seconds.items()}


def markdown(results: Dict) -> str:
    s = results['settings']
    lines = [f'# Epoch stalls, {results["date"]}', '', f'Machine: {results["machine"]}. Command: `{results["command"]}`.',
             '', f'{s["epochs"]} timed epochs of {s["steps"]} steps (batch {s["batch_size"]}, {s["size"]}x{s["size"]}, '
             f'{s["layers"]} convolutions of {s["width"]}) per way, the ways in turn. Stalled: ended in the '
             f'{WAKE_UP_WINDOW_S} s after an autotune wake-up (5.11, 10.23, 20.47 s) and over {STALL_FACTOR}x the '
             'way\'s fastest epoch.', '',
             '| way | stalled epochs | fastest epoch (s) | median epoch (s) | epochs (s) |', '|---|---|---|---|---|']
    for way, r in results['ways'].items():
        lines.append(f'| {way} | {r["stalled_epochs"]} of {len(r["epoch_s"])} | {r["fastest_epoch_s"]:.2f} | '
                     f'{r["median_epoch_s"]:.2f} | {", ".join(f"{v:.2f}" for v in r["epoch_s"])} |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--epochs', type=int, default=12, help='timed epochs per way (default 12)')
    parser.add_argument('--steps', type=int, default=7, help='steps per epoch (default 7, as in bench.run)')
    parser.add_argument('--batch_size', type=int, default=32)
    parser.add_argument('--size', type=int, default=64, help='image side in pixels (default 64)')
    parser.add_argument('--layers', type=int, default=6)
    parser.add_argument('--width', type=int, default=96, help='filters per convolution (default 96: ~7.5 s epochs '
                        'on the AMX Xeon, between two wake-ups)')
    parser.add_argument('--results_dir', default=RESULTS_DIR)
    args = parser.parse_args(argv)
    results = {**results_file.header('bench.epoch_stall', argv),
               'settings': {key: getattr(args, key) for key in ('epochs', 'steps', 'batch_size', 'size', 'layers', 'width')},
               'ways': measure(args.epochs, args.steps, args.batch_size, args.size, args.layers, args.width)}
    results_file.write(results, args.results_dir, markdown(results), name='epoch-stall')
    return results


if __name__ == '__main__':
    main()
