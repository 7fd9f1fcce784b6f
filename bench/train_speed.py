"""Training speed, step by step: the tutorial's code and this project's training variants, interleaved.

    .venv/bin/python -m bench.train_speed                  # ~10 min on 2 CPU cores
    .venv/bin/python -m bench.train_speed --steps 10 --batch_size 8 --num_train 16   # smoke
    .venv/bin/python -m bench.train_speed --steps 32 --block 8      # 8 steps a side per turn
    .venv/bin/python -m bench.train_speed --no-mixed_bfloat16      # the project sides in float32 on any CPU

Every side trains the same architecture (MobileNetV2 U-Net, encoder frozen with the same random weights, as
the tutorial trains it) on the same in-memory batches. After each side's first step (timed on its own: tracing
plus one step, the fixed cost a Trainer pays every run), the sides take one step each in turn, so a throttled
phase of the machine slows every side alike; `--block N` makes it N steps a side per turn, as a check that
switching between models every step (their weights and activations leave the caches) favours no side.
Reported per side: images/s from the median step time and from the best quartile (25th percentile) of step
times, and each figure's ratio to the tutorial's code. Sides:

- `tutorial`: `bench/tutorial_baseline.py`, the tutorial's model and `compile`;
- `project`: `modules.train.build_model` as `run_fn` builds it (float32 here unless the CPU has AMX);
- `project_subpixel`: the same with `subpixel_upsampling` (sub-pixel transposed convolutions);
- `project_stock_upsampling`: the same with `gemm_upsampling=False`, the stock transposed convolutions
  everywhere (`project` computes the decoder's 4x4 and 8x8 ones as a GEMM under mixed bfloat16);
- `project_concatenated_logits`: the same with `split_skip_logits=False`, the logits layer over the
  concatenation of the last decoder block and the first skip (`project` takes them apart);
- `project_bfloat16`: the same in mixed bfloat16, where it is not the default already.

Then the tutorial's and the project's steps are profiled (`bench/step_profile.py`: time and FLOPs per op type,
next to what one large matrix multiply reaches on this CPU in float32 and bfloat16), which says what bounds a
step on the machine at hand.

Writes `bench/results/train-speed[-block<N>][-float32|-bfloat16]-<date>.json` and `.md`, with the CPU kind.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import argparse  # noqa: E402
import tempfile  # noqa: E402
from typing import Dict, List, Optional, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from bench import results_file, step_profile, timing, tutorial_baseline  # noqa: E402
from bench.results_file import RESULTS_DIR  # noqa: E402
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
    base = hparams.TrainingConfig(batchnorm_momentum=0.9, encoder_weights=encoder_weights, train_encoder=False,
                                  speed=hparams.SpeedConfig(mixed_bfloat16=mixed_default))
    variants = {'project': base, 'project_subpixel': base.with_speed(subpixel_upsampling=True),
                'project_stock_upsampling': base.with_speed(gemm_upsampling=False),
                'project_concatenated_logits': base.with_speed(split_skip_logits=False)}
    if not mixed_default:
        variants['project_bfloat16'] = base.with_speed(mixed_bfloat16=True)
    for name, settings in variants.items():
        models[name] = train.build_model(settings)
    return models


def profiles(models: Dict[str, keras.Model], steppers: Dict[str, Tuple], names: Sequence[str], steps: int,
             batch_size: int, work_dir: str) -> Dict:
    """The machine's matrix-multiply rate in float32 and bfloat16, the project's transposed convolutions
    timed alone, and a profile of each named side's step."""
    profiled = {'matmul_gflops': {'float32': step_profile.matmul_gflops(tf.float32),
                                  'bfloat16': step_profile.matmul_gflops(tf.bfloat16)},
                'transposed_convolutions': step_profile.transposed_convolution_rates(models['project'], batch_size),
                'sides': {}}
    for name in names:
        function, iterator = steppers[name]
        profiled['sides'][name] = step_profile.profile_train_function(function, iterator, steps,
                                                                      os.path.join(work_dir, 'profile', name))
        print(f'{name}: profiled, {profiled["sides"][name]["achieved_gflops"]:.0f} GFLOP/s', flush=True)
    return profiled


def markdown(results: Dict) -> str:
    lines = [f'# Training speed, step by step, {results["date"]}', '',
             f'Machine: {results["machine"]}. Command: `{results["command"]}`.', '',
             'Same architecture and batches; encoder frozen with the same random weights on every side; '
             f'{results["settings"]["block"]} step(s) per side in turn. images/s from the median step and from the '
             'best quartile of steps; ratios are to the tutorial\'s code on the same figure.', '',
             '| side | first step (s) | images/s (median) | x tutorial | images/s (best quartile) | x tutorial |',
             '|---|---|---|---|---|---|']
    for name, r in results['sides'].items():
        lines.append(f'| {name} | {r["first_step_s"]:.1f} | {r["images_per_s_median"]:.1f} | '
                     f'{r["vs_tutorial_median"]:.2f} | {r["images_per_s_best_quartile"]:.1f} | '
                     f'{r["vs_tutorial_best_quartile"]:.2f} |')
    if results.get('profile'):
        lines += profile_markdown(results['profile'])
    return '\n'.join(lines) + '\n'


def profile_markdown(profiled: Dict) -> List[str]:
    matmul = profiled['matmul_gflops']
    lines = ['', '## Where a step\'s time goes', '',
             f'One [2048, 2048] matrix multiply (the friendliest kernel) reaches {matmul["float32"]:.0f} GFLOP/s in '
             f'float32 and {matmul["bfloat16"]:.0f} GFLOP/s in bfloat16 on this machine. Per side, a few steps '
             'under `tf.profiler`: op time per type (summed over threads), tfprof\'s FLOPs of the ops that ran, '
             'and the rate each type reaches. Op time is summed over the executor\'s threads: where two ops ran '
             'at once, each had part of the cores, so a type\'s rate here is below what its kernels reach alone '
             '(next table). Grappler\'s fused ops (`_Fused*`, the encoder\'s convolutions) carry no FLOP count, so '
             'the achieved rate is a lower bound.', '']
    for name, p in profiled['sides'].items():
        lines += [f'**{name}**: {p["wall_s_per_step"]:.2f} s per step (profiled), {p["gflop_per_step"]:.0f} GFLOP '
                  f'per step executed ({p["graph_gflop_per_step"]:.0f} in the traced graph), '
                  f'**{p["achieved_gflops"]:.0f} GFLOP/s** = {p["achieved_gflops"] / matmul["float32"]:.0%} of the '
                  'float32 matrix multiply.', '',
                  '| op type | s per step | share of op time | GFLOP per step | GFLOP/s |', '|---|---|---|---|---|']
        lines += [f'| {r["op_type"]} | {r["seconds_per_step"]:.3f} | {r["share_of_op_time"]:.1%} | '
                  f'{r["gflop_per_step"]:.1f} | {r["gflops"]:.0f} |' for r in p['top_op_types']]
        lines += [f'| (other types) | | {p["other_op_types_share"]:.1%} | | |', '']
    rows = profiled.get('transposed_convolutions', [])
    if rows:
        lines += ['The project\'s transposed convolutions timed alone (forward, input and kernel gradients, the '
                  'step\'s batch):', '',
                  '| layer | input | filters | GFLOP | s | GFLOP/s | of the float32 matrix multiply |',
                  '|---|---|---|---|---|---|---|']
        lines += [f'| {r["layer"]} | {"x".join(map(str, r["input_shape"]))} | {r["filters"]} | {r["gflop"]:.1f} | '
                  f'{r["seconds"]:.3f} | {r["gflops"]:.0f} | {r["gflops"] / matmul["float32"]:.0%} |' for r in rows]
        total = sum(r['gflop'] for r in rows) / sum(r['seconds'] for r in rows)
        lines += ['', f'All {len(rows)} together: {total:.0f} GFLOP/s, {total / matmul["float32"]:.0%} of the float32 '
                  'matrix multiply.', '']
    return lines


def results_name(block: int, mixed_bfloat16: Optional[bool]) -> str:
    """`train-speed[-block<N>][-float32|-bfloat16]`: one mode never replaces another's results."""
    name = 'train-speed' if block == 1 else f'train-speed-block{block}'
    return name if mixed_bfloat16 is None else f'{name}-{"bfloat16" if mixed_bfloat16 else "float32"}'


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num_train', type=int, default=64, help='generated training images (default 64)')
    parser.add_argument('--batch_size', type=int, default=tutorial_baseline.BATCH_SIZE)
    parser.add_argument('--steps', type=int, default=30, help='timed steps per side (default 30)')
    parser.add_argument('--block', type=int, default=1, help='steps a side takes per turn (default 1)')
    parser.add_argument('--profile_steps', type=int, default=3,
                        help='steps of the tutorial and the project profiled after the timed ones (0: none)')
    parser.add_argument('--mixed_bfloat16', action=argparse.BooleanOptionalAction, default=None,
                        help="the project sides' precision (default: what run_fn picks on this machine)")
    parser.add_argument('--results_dir', default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.block < 1:
        parser.error(f'--block must be at least 1, got {args.block}')
    mixed_default = (train.use_mixed_bfloat16(hparams.TrainingConfig()) if args.mixed_bfloat16 is None
                     else args.mixed_bfloat16)
    with tempfile.TemporaryDirectory() as work_dir:
        dataset = batches(args.num_train, args.batch_size, work_dir)
        models = sides(mixed_default, random_encoder_weights(os.path.join(work_dir, 'encoder.h5')))
        timed, steppers = timing.interleaved_steps(models, {name: iter(dataset) for name in models}, args.steps,
                                                   args.batch_size, args.block)
        timing.add_ratios(timed, 'tutorial')
        profiled = profiles(models, steppers, ('tutorial', 'project'), args.profile_steps, args.batch_size,
                            work_dir) if args.profile_steps else {}
    results = {**results_file.header('bench.train_speed', argv),
               'settings': {'batch_size': args.batch_size, 'steps': args.steps, 'block': args.block,
                            'project_mixed_bfloat16': mixed_default},
               'sides': timed, 'profile': profiled}
    name = results_name(args.block, args.mixed_bfloat16)
    results_file.write(results, args.results_dir, markdown(results), name=name)
    return results


if __name__ == '__main__':
    main()
