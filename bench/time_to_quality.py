"""Time to quality: how long each side trains until its eval pixel accuracy reaches the tutorial's own final figure.

    .venv/bin/python -m bench.time_to_quality                      # ~15 min on 2 CPU cores: 240/60 generated pets
    .venv/bin/python -m bench.time_to_quality --source_dir ../shared/data/oxford-pets-real
    .venv/bin/python -m bench.time_to_quality --encoder_weights mobilenet_v2_1.0_128_no_top.h5  # the tutorial's setting
    .venv/bin/python -m bench.time_to_quality --num_train 24 --num_test 8 --tutorial_epochs 2 --project_epochs 2 \\
        --rounds 1 --no-write                                      # smoke

The field measures training as time to a target quality (MLPerf Training), not per step. Sides, each from the
same start on the same images: by default a MobileNetV2 encoder with random weights that every side trains (no
ImageNet weights here); with `--encoder_weights` a pretrained encoder (a local `.h5`: ImageNet's where a copy is
at hand, or one `bench.encoder_weights` saved from a model trained on other images) that every side keeps
frozen, as the tutorial does. From random weights on a few hundred images the tutorial's code ends at the
background share, a low bar; from a pretrained encoder it learns, and the target is a real one. Results of
that setting are their own benchmark, `time-to-quality-pretrained-<date>`. Sides:
- `tutorial`: the tutorial's code (`bench/tutorial_baseline.py`): batch 64, 20 epochs of `len(train) // 64`
  steps; its final eval pixel accuracy is the target;
- `tutorial_bfloat16`: the same code with the one line `mixed_precision.set_global_policy('mixed_bfloat16')`,
  so what the project gains beyond that line shows;
- `project`: the Trainer's own code (`modules/train.py`: the settings it would put in effect, its model, input
  pipeline from the pipeline's Transform output and schedule) with the `default` preset's training settings.
Each side trains in its own process, the sides one after another in a round (alternated, so a slow phase of
the machine hits every side), `--rounds` times. After every epoch the model is scored on the eval split
(untimed; the same images and nearest-resized masks for every side, `bench/measure.py`). A side's time to
quality is its training seconds (first-step tracing included) up to the first epoch whose pixel accuracy
reaches the target (the lowest of the rounds' tutorial finals, so that every round of the tutorial reaches it);
images are counted as the batches held them: the tutorial's `.batch(64).repeat()` ends each pass over the data
with a partial batch.
Writes `bench/results/time-to-quality-<date>.{json,md}` with the CPU kind.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from bench import results_file, timing  # noqa: E402

SIDES = ('tutorial', 'tutorial_bfloat16', 'project')
TUTORIAL_BATCH = 64


def time_to_target(epochs: List[Dict], target: float) -> Optional[Dict]:
    """Training seconds and images up to the first epoch whose pixel accuracy reaches `target` (None: never)."""
    seconds = images = 0.0
    for number, epoch in enumerate(epochs, 1):
        seconds += epoch['train_s']
        images += epoch['images']
        if epoch['pixel_accuracy'] >= target:
            return {'epoch': number, 'seconds': round(seconds, 1), 'images': int(images)}
    return None


def prepare(work_dir: str, source_dir: Optional[str], num_train: int, num_test: int) -> Dict:
    """The data (generated pets unless `source_dir`) and the pipeline's ExampleGen and Transform outputs for it."""
    from tfx import v1 as tfx
    from components.tfds_example_gen import sample_data
    from modules import paths
    from pipeline import config as config_lib, data_source, node_ids, platform
    from pipeline.pipeline import create_data_components, create_training_components
    if source_dir is None:
        source_dir = os.path.join(work_dir, f'pets_{num_train}_{num_test}')
        if not os.path.isdir(os.path.join(source_dir, 'images')):
            sample_data.write_folders(source_dir, num_train, num_test, seed=0)
    config = data_source.resolve_classes(config_lib.preset('default').with_overrides({'data.source_dir': source_dir}))
    # Prepared outputs are reused across runs, so they live under a folder of their data: never another's.
    work_dir = os.path.join(work_dir, 'prepared-' + hashlib.sha1(os.path.abspath(source_dir).encode()).hexdigest()[:12])
    os.makedirs(work_dir, exist_ok=True)
    root = os.path.join(work_dir, 'pipeline_root')
    if not os.path.isdir(os.path.join(root, node_ids.TRANSFORM)):
        example_gen, _, schema_gen, example_validator, _ = create_data_components(config)
        transform = create_training_components(config, example_gen, schema_gen, example_validator, None, None)[0]
        tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
            pipeline_name='time_to_quality', pipeline_root=root, components=[example_gen, schema_gen, transform],
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                os.path.join(work_dir, 'metadata.db')), beam_pipeline_args=platform.direct_beam_args(1)))
    examples = paths.version_dir(os.path.join(root, node_ids.EXAMPLE_GEN, 'examples'))
    transformed = paths.version_dir(os.path.join(root, node_ids.TRANSFORM, 'transformed_examples'))
    return {'source_dir': source_dir, 'eval_examples': paths.split_dir(examples, 'eval'),
            'transform_graph': paths.version_dir(os.path.join(root, node_ids.TRANSFORM, 'transform_graph')),
            'train_files': sorted(os.path.join(paths.split_dir(transformed, 'train'), f)
                                  for f in os.listdir(paths.split_dir(transformed, 'train'))),
            'work_dir': work_dir}


def run_side(side: str, prepared: Dict, epochs: int, seed: int = 0) -> Dict:
    """Trains one side for `epochs`, scoring it after each; returns its epochs (train_s, images, scores)."""
    import tensorflow_transform as tft
    import tf_keras as keras
    from bench import measure, tutorial_baseline
    from modules import callbacks as callbacks_lib, data, paths, train
    from pipeline import config as config_lib
    images, masks = measure.decode_eval_split(paths.read_gzip_records(prepared['eval_examples']))
    epoch_log: List[Dict] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.start
            scores = measure.score(self.model, images, masks)
            epoch_log.append({'train_s': round(seconds, 2), 'pixel_accuracy': round(scores['pixel_accuracy'], 4),
                              'mean_iou': round(scores['mean_iou'], 4)})
            print(f'{side} epoch {epoch + 1}: {seconds:.1f} s, pixel accuracy {scores["pixel_accuracy"]:.4f}',
                  flush=True)

    setup_start = time.perf_counter()
    if side.startswith('tutorial'):
        if side == 'tutorial_bfloat16':
            keras.mixed_precision.set_global_policy('mixed_bfloat16')  # the one line
        keras.utils.set_random_seed(seed)
        dataset, info = tutorial_baseline.load_dataset(prepared['source_dir'], None,
                                                       os.path.join(prepared['work_dir'], f'tfds_{side}'))
        train_batches, _ = tutorial_baseline.input_pipelines(dataset, TUTORIAL_BATCH)
        weights = prepared.get('encoder_weights')
        model = tutorial_baseline.build_and_compile(weights, train_encoder=weights is None)
        num_train = info.splits['train'].num_examples
        steps, batch_size, fit_callbacks = max(1, num_train // TUTORIAL_BATCH), TUTORIAL_BATCH, []
        settings = {'batch_size': TUTORIAL_BATCH, 'steps_per_epoch': steps, 'encoder_trained': weights is None}
    else:
        training = config_lib.preset('default').training
        if prepared.get('encoder_weights'):
            training = dataclasses.replace(training, encoder_weights=prepared['encoder_weights'], train_encoder=False)
        training, decided = train.effective_settings(dataclasses.replace(training, epochs=epochs, seed=seed))
        keras.utils.set_random_seed(training.seed)
        transform_output = tft.TFTransformOutput(prepared['transform_graph'])
        model = train.build_model(training)
        train_batches, _ = train.datasets(training, prepared['train_files'], prepared['train_files'],
                                          transform_output, training.batch_size)
        num_train = data.count_examples(prepared['train_files'])
        steps, batch_size = None, training.batch_size
        fit_callbacks = callbacks_lib.training_callbacks(training)
        settings = {'batch_size': batch_size, 'decided': decided,
                    'mixed_bfloat16': training.speed.mixed_bfloat16, 'lr_schedule': training.lr_schedule,
                    'encoder_trained': training.encoder_is_trained}
    # Building the model and its input (the project's: measuring which precision to train in) is not training.
    settings['setup_s'] = round(time.perf_counter() - setup_start, 1)
    model.fit(train_batches, epochs=epochs, steps_per_epoch=steps, callbacks=[*fit_callbacks, Timer()], verbose=0)
    counts = ([num_train] * epochs if steps is None else
              timing.per_epoch(timing.batch_sizes(num_train, batch_size, steps * epochs), steps))
    for epoch, count in zip(epoch_log, counts):
        epoch['images'] = count
    return {'side': side, 'epochs': epoch_log, 'num_train': num_train, 'settings': settings}


def _run_in_process(side: str, prepared_path: str, epochs: int, seed: int, out_path: str) -> Dict:
    done = subprocess.run([sys.executable, '-m', 'bench.time_to_quality', '--side', side, '--prepared',
                           prepared_path, '--side_epochs', str(epochs), '--seed', str(seed), '--side_out', out_path],
                          cwd=results_file.ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f'side {side} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}')
    print(''.join(line + '\n' for line in done.stdout.splitlines() if ' epoch ' in line), end='', flush=True)
    with open(out_path) as f:
        return json.load(f)


def summarize(rounds: List[Dict[str, Dict]]) -> Dict:
    """The target (the lowest of the tutorial's finals: a median of two rounds would be one the tutorial's
    own weaker round never reached), each side's time and images to it per round, and the ratios of the
    tutorial's time to each side's (per round, and of the medians)."""
    target = min(r['tutorial']['epochs'][-1]['pixel_accuracy'] for r in rounds)
    sides = {}
    for side in rounds[0]:
        reached = [time_to_target(r[side]['epochs'], target) for r in rounds]
        final = [r[side]['epochs'][-1]['pixel_accuracy'] for r in rounds]
        sides[side] = {'reached': reached, 'final_pixel_accuracy': final,
                       'total_train_s': [round(sum(e['train_s'] for e in r[side]['epochs']), 1) for r in rounds],
                       'epochs_trained': len(rounds[0][side]['epochs'])}
        rates = [float(np.median([e['images'] / e['train_s'] for e in (r[side]['epochs'][1:] or r[side]['epochs'])]))
                 for r in rounds]
        sides[side]['images_per_s'] = round(float(np.median(rates)), 1)
        times = [x['seconds'] for x in reached if x]
        sides[side]['median_seconds_to_target'] = float(np.median(times)) if len(times) == len(rounds) else None
    reference = sides['tutorial']['median_seconds_to_target']
    for side, result in sides.items():
        seconds = result['median_seconds_to_target']
        result['speedup_vs_tutorial'] = round(reference / seconds, 2) if seconds and reference else None
        result['speedup_per_round'] = [round(t['seconds'] / x['seconds'], 2) if x and t else None for t, x in
                                       zip(sides['tutorial']['reached'], result['reached'])]
    return {'target_pixel_accuracy': target, 'sides': sides}


def _encoder_words(encoder_weights: Optional[str]) -> str:
    return (f'pretrained, frozen (`{os.path.basename(encoder_weights)}`)' if encoder_weights
            else 'random weights, trained')


def markdown(results: Dict) -> str:
    summary = results['summary']
    lines = [f'# bench.time_to_quality, {results["date"][:10]}', '',
             f'{results["machine"]["cpus"]} cores, {results["machine"]["cpu"]["model_name"]} '
             f'({results_file.cpu_tag(results["machine"]["cpu"])}); `{results["command"]}`; data: '
             f'{results["data"]}; encoder: {_encoder_words(results.get("encoder_weights"))}; '
             f'{len(results["rounds"])} round(s), sides alternated, each in its own process.', '',
             f'Target: eval pixel accuracy **{summary["target_pixel_accuracy"]:.4f}**, the tutorial code\'s final '
             'figure (the lowest of the rounds).', '',
             '| side | epochs trained | final pixel accuracy | reached the target at | seconds to target | '
             'images to target | x tutorial (time) | images/s |', '|---|---|---|---|---|---|---|---|']
    for side, result in summary['sides'].items():
        reached = [x for x in result['reached'] if x]
        at = ', '.join(f'epoch {x["epoch"]}' if x else 'not reached' for x in result['reached'])
        seconds = ', '.join(f'{x["seconds"]:.0f}' if x else '-' for x in result['reached'])
        images = ', '.join(f'{x["images"]}' if x else '-' for x in result['reached'])
        speedup = result['speedup_vs_tutorial']
        lines.append(f'| {side} | {result["epochs_trained"]} | '
                     + ', '.join(f'{v:.4f}' for v in result['final_pixel_accuracy'])
                     + f' | {at} | {seconds} | {images} | '
                     + (f'**{speedup:.2f}x**' if speedup else 'target not reached in every round' if reached
                        else 'target not reached') + f' | {result["images_per_s"]:.1f} |')
    lines += ['', 'Seconds are training time (first-step tracing included, per-epoch scoring excluded); images '
              'are counted as the batches held them; images/s: the median epoch after the first (median of the '
              'rounds).', '']
    return '\n'.join(lines)


def _h5_file(path: str) -> str:
    if not path.endswith('.h5') or not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f'{path!r} is not a .h5 file')
    return os.path.abspath(path)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--source_dir', help='Oxford-IIIT Pet folders or archives (default: generated pets)')
    parser.add_argument('--encoder_weights', type=_h5_file,
                        help='a pretrained MobileNetV2 no-top .h5 every side keeps frozen (default: random, trained)')
    parser.add_argument('--num_train', type=int, default=240)
    parser.add_argument('--num_test', type=int, default=60)
    parser.add_argument('--tutorial_epochs', type=int, default=20, help="the tutorial's epochs (default: 20)")
    parser.add_argument('--project_epochs', type=int, default=12,
                        help="the project's epochs (default: 12, the default preset's)")
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--sides', nargs='+', choices=SIDES, default=list(SIDES))
    parser.add_argument('--work_dir', default='/tmp/petseg_time_to_quality')
    parser.add_argument('--results_dir', default=results_file.RESULTS_DIR)
    parser.add_argument('--write', action=argparse.BooleanOptionalAction, default=True)
    # One side in this process (the benchmark starts itself once per side and round).
    parser.add_argument('--side', choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument('--prepared', help=argparse.SUPPRESS)
    parser.add_argument('--side_epochs', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--seed', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--side_out', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        with open(args.prepared) as f:
            result = run_side(args.side, json.load(f), args.side_epochs, args.seed)
        with open(args.side_out, 'w') as f:
            json.dump(result, f)
        return result
    if 'tutorial' not in args.sides:
        parser.error('the tutorial side sets the target: keep it in --sides')
    results = results_file.header('bench.time_to_quality', argv)
    results['data'] = args.source_dir or f'generated pets, {args.num_train} train / {args.num_test} test'
    results['encoder_weights'] = args.encoder_weights
    os.makedirs(args.work_dir, exist_ok=True)
    # The frozen encoder every side starts from (None: random weights, trained).
    prepared = dict(prepare(args.work_dir, args.source_dir, args.num_train, args.num_test),
                    encoder_weights=args.encoder_weights)
    prepared_path = os.path.join(args.work_dir, 'prepared.json')
    with open(prepared_path, 'w') as f:
        json.dump(prepared, f)
    results['rounds'] = []
    for number in range(args.rounds):
        runs = {}
        for side in args.sides:
            epochs = args.project_epochs if side == 'project' else args.tutorial_epochs
            print(f'round {number + 1}: {side} ...', flush=True)
            runs[side] = _run_in_process(side, prepared_path, epochs, number,
                                         os.path.join(args.work_dir, f'{side}-{number}.json'))
        results['rounds'].append(runs)
    results['summary'] = summarize(results['rounds'])
    text = markdown(results)
    if args.write:
        results_file.write(results, args.results_dir, text,
                           name='time-to-quality-pretrained' if args.encoder_weights else 'time-to-quality')
    else:
        print(text)
    return results


if __name__ == '__main__':
    main()
