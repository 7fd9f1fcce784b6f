"""Training speed, step by step: the tutorial's code and this project's training variants, interleaved.

    .venv/bin/python -m bench.train_speed                  # ~10 min on 2 CPU cores
    .venv/bin/python -m bench.train_speed --steps 10 --batch_size 8 --num_train 16   # smoke

Every side trains the same architecture (MobileNetV2 U-Net, encoder frozen with the same random weights, as
the tutorial trains it) on the same in-memory batches. After each side's first step (timed on its own: tracing
plus one step, the fixed cost a Trainer pays every run), the sides take one step each in turn, so a throttled
phase of the machine slows every side alike. Reported per side: images/s from the median step time and from
the best quartile (25th percentile) of step times, and each figure's ratio to the tutorial's code. Sides:

- `tutorial`: `bench/tutorial_baseline.py`, the tutorial's model and `compile`;
- `project`: `modules.train.build_model` as `run_fn` builds it (float32 here unless the CPU has AMX);
- `project_subpixel`: the same with `subpixel_upsampling` (sub-pixel transposed convolutions);
- `project_bfloat16`: the same in mixed bfloat16, where it is not the default already.

Writes `bench/results/train-speed-<date>.json` and `.md`, with the CPU kind.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Dict, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from bench import tutorial_baseline  # noqa: E402
from bench.run import RESULTS_DIR, cpu_kind  # noqa: E402
from components.tfds_example_gen import sample_data  # noqa: E402
from modules import hparams, train  # noqa: E402


def batches(num_train: int, batch_size: int, work_dir: str) -> tf.data.Dataset:
    """The same repeating batches for every side: generated pets through the tutorial's load_image."""
    sample_data.write_folders(work_dir, num_train, 1, seed=0)
    dataset, _ = tutorial_baseline.load_dataset(work_dir, None, os.path.join(work_dir, 'tfds'))
    images, masks = [], []
    for image, mask in dataset['train'].map(tutorial_baseline.load_image):
        images.append(image.numpy())
        masks.append(mask.numpy())
    return tf.data.Dataset.from_tensor_slices((np.stack(images), np.stack(masks))).repeat().batch(
        batch_size, drop_remainder=True).cache()


def random_encoder_weights(path: str) -> str:
    """A MobileNetV2 no-top `.h5` with random weights: every side's frozen encoder starts from this file."""
    keras.utils.set_random_seed(0)
    keras.applications.MobileNetV2(input_shape=[128, 128, 3], include_top=False, weights=None).save_weights(path)
    return path


def sides(mixed_default: bool, encoder_weights: str) -> Dict[str, keras.Model]:
    """Compiled models: the tutorial's and the project's variants, all with the same frozen encoder."""
    models = {'tutorial': tutorial_baseline.build_and_compile(encoder_weights, batchnorm_momentum=0.9)}
    base = hparams.TrainingConfig(batchnorm_momentum=0.9, mixed_bfloat16=mixed_default, encoder_weights=encoder_weights,
                                  train_encoder=False)
    variants = {'project': base, 'project_subpixel': dataclasses.replace(base, subpixel_upsampling=True)}
    if not mixed_default:
        variants['project_bfloat16'] = dataclasses.replace(base, mixed_bfloat16=True)
    for name, settings in variants.items():
        models[name] = train.build_model(settings)
    return models


def interleaved_steps(models: Dict[str, keras.Model], dataset: tf.data.Dataset, steps: int,
                      batch_size: int) -> Dict[str, Dict]:
    """First-step seconds per side, then `steps` rounds of one timed step per side."""
    functions, iterators, results = {}, {}, {}
    for name, model in models.items():
        iterators[name] = iter(dataset)
        functions[name] = model.make_train_function()
        start = time.perf_counter()
        functions[name](iterators[name])['loss'].numpy()
        results[name] = {'first_step_s': round(time.perf_counter() - start, 2), 'step_s': []}
        print(f'{name}: first step (tracing) {results[name]["first_step_s"]} s', flush=True)
    for _ in range(steps):
        for name in models:
            start = time.perf_counter()
            functions[name](iterators[name])['loss'].numpy()
            results[name]['step_s'].append(time.perf_counter() - start)
    for name, result in results.items():
        times = np.asarray(result['step_s'])
        result.update(median_step_s=float(np.median(times)), best_quartile_step_s=float(np.percentile(times, 25)),
                      images_per_s_median=batch_size / float(np.median(times)),
                      images_per_s_best_quartile=batch_size / float(np.percentile(times, 25)))
    for name, result in results.items():
        result['vs_tutorial_median'] = result['images_per_s_median'] / results['tutorial']['images_per_s_median']
        result['vs_tutorial_best_quartile'] = (result['images_per_s_best_quartile']
                                               / results['tutorial']['images_per_s_best_quartile'])
    return results


def markdown(results: Dict) -> str:
    lines = [f'# Training speed, step by step, {results["time"]}', '',
             f'Machine: {results["machine"]}. Command: `{results["command"]}`.', '',
             'Same architecture and batches; encoder frozen with the same random weights on every side; one step '
             'per side in turn. images/s from the median step and from the best quartile of steps; ratios are '
             'to the tutorial\'s code on the same figure.', '',
             '| side | first step (s) | images/s (median) | x tutorial | images/s (best quartile) | x tutorial |',
             '|---|---|---|---|---|---|']
    for name, r in results['sides'].items():
        lines.append(f'| {name} | {r["first_step_s"]:.1f} | {r["images_per_s_median"]:.1f} | '
                     f'{r["vs_tutorial_median"]:.2f} | {r["images_per_s_best_quartile"]:.1f} | '
                     f'{r["vs_tutorial_best_quartile"]:.2f} |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num_train', type=int, default=64, help='generated training images (default 64)')
    parser.add_argument('--batch_size', type=int, default=tutorial_baseline.BATCH_SIZE)
    parser.add_argument('--steps', type=int, default=30, help='timed steps per side (default 30)')
    parser.add_argument('--results_dir', default=RESULTS_DIR)
    args = parser.parse_args(argv)
    mixed_default = train.use_mixed_bfloat16(hparams.TrainingConfig())
    with tempfile.TemporaryDirectory() as work_dir:
        dataset = batches(args.num_train, args.batch_size, work_dir)
        models = sides(mixed_default, random_encoder_weights(os.path.join(work_dir, 'encoder.h5')))
        timed = interleaved_steps(models, dataset, args.steps, args.batch_size)
    now = datetime.datetime.now(datetime.timezone.utc)
    results = {'time': now.isoformat(timespec='seconds'), 'machine': {'cpus': os.cpu_count(), 'cpu': cpu_kind()},
               'command': ' '.join(['python -m bench.train_speed'] + list(sys.argv[1:] if argv is None else argv)),
               'settings': {'batch_size': args.batch_size, 'steps': args.steps, 'project_mixed_bfloat16': mixed_default},
               'sides': timed}
    os.makedirs(args.results_dir, exist_ok=True)
    stem = os.path.join(args.results_dir, f'train-speed-{now.date().isoformat()}')
    with open(stem + '.json', 'w') as f:
        json.dump(results, f, indent=1)
    with open(stem + '.md', 'w') as f:
        f.write(markdown(results))
    print(markdown(results))
    return results


if __name__ == '__main__':
    main()
