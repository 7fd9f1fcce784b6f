"""Benchmarks petseg against the seed tutorial's own code, side by side in one run, and prints ratios.

    .venv/bin/python -m bench.run                         # ~12 min on 2 CPU cores, generated data
    .venv/bin/python -m bench.run --num_train 32 --num_test 8 --epochs 2 --batch_size 8 --pipeline_epochs 2  # smoke
    .venv/bin/python -m bench.run --data_dir ~/tensorflow_datasets --encoder_weights ~/mobilenet_v2_..._128_no_top.h5
    .venv/bin/python -m bench.run --source_dir ../shared/data/oxford-pets-real --preset real --sections quality ablation

The end-to-end run is `local_runner.py` with `--preset` and every config flag given here (`--pipeline_epochs`
sets its epochs); the training-speed section applies the benchmark's own defaults (`BENCH_OVERRIDES`) on top.
The quality section trains the tutorial's code from scratch next to the end-to-end run's model, and the
ablation retrains the Trainer once per settings variant (`bench/quality.py`).

Measured, for this project vs the baseline (`bench/tutorial_baseline.py`) on the same images:
training throughput and quality after the same epochs (same batch size, same frozen encoder weights: by
default the encoder the end-to-end run trained, as ImageNet weights cannot be downloaded here);
preprocessing throughput (Transform under Beam with 1 and 2 workers vs a plain tf.data loop);
serving latency and batch throughput (`serving_default` on JPEG bytes vs `model.predict` on decoded
tensors); Evaluator time per 1,000 eval images vs a plain predict-and-score loop; the end-to-end
`local_runner.py` run per component (from MLMD) with its peak memory; FLOPs per image and achieved FLOP/s.
Writes `bench/results/<date>.json` and `.md`.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tf_keras as keras  # noqa: E402

from bench import encoder_weights, measure, quality, results_file, timing, tutorial_baseline  # noqa: E402
from bench.results_file import RESULTS_DIR, ROOT  # noqa: E402
from components.tfds_example_gen import sample_data  # noqa: E402
from modules import classes, cli, data as data_lib, model as model_lib, paths, precision, train  # noqa: E402
from pipeline import config as config_lib, flags, node_ids, platform  # noqa: E402
from pipeline.local import run_summary  # noqa: E402
from pipeline.eval_config import build_eval_config  # noqa: E402

SERVING_SIZES = ((500, 375), (250, 188), (1000, 750))


# The benchmark's own defaults on top of the `default` preset: the tutorial's batch size, a few epochs.
BENCH_OVERRIDES = {'training.epochs': 8, 'training.batch_size': tutorial_baseline.BATCH_SIZE,
                   'training.batchnorm_momentum': 0.9}


SECTIONS = ('speed', 'preprocessing', 'serving', 'evaluation', 'flops', 'quality', 'ablation')
DEFAULT_SECTIONS = ('speed', 'preprocessing', 'serving', 'evaluation', 'flops', 'quality')


def _add_bench_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--sections', nargs='+', choices=SECTIONS, default=list(DEFAULT_SECTIONS),
                        help='what to measure after the end-to-end run (default: all but ablation; flops needs speed)')
    parser.add_argument('--ablation_variants', type=cli.positive_int,
                        help='train only the first N ablation variants (default: all)')
    parser.add_argument('--ablation_epochs', type=cli.positive_int,
                        help="epochs of each ablation variant (default: the end-to-end run's)")
    parser.add_argument('--other_precision', action=argparse.BooleanOptionalAction, default=None,
                        help="also train the project in the precision it does not use (default: only where the CPU "
                             "has bfloat16 instructions; without them bfloat16 is emulated, ~10x slower, and "
                             "bench.train_speed measures that)")
    parser.add_argument('--timed_steps', type=int, default=16,
                        help='after the epochs, steps per training side timed one at a time in turn (default 16; 0: none)')
    parser.add_argument('--num_train', type=cli.positive_int, default=480, help='generated training images (default 480)')
    parser.add_argument('--num_test', type=cli.positive_int, default=120, help='generated eval images (default 120)')
    parser.add_argument('--pipeline_epochs', type=cli.positive_int,
                        help="epochs of the end-to-end run (default: the preset's)")
    parser.add_argument('--work_dir', default=os.path.join(ROOT, 'outputs', 'bench'), help='scratch (default outputs/bench)')
    parser.add_argument('--results_dir', default=RESULTS_DIR, help='where results go (default bench/results)')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Benchmark flags plus every setting of the pipeline's config (`pipeline/flags.py`): `args.pipeline_config`
    (preset + flags, what the end-to-end run uses), `args.config` (with `BENCH_OVERRIDES`, for the speed
    section) and `args.pipeline_flags` (the config flags as given, passed on to `local_runner.py`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_bench_flags(parser)
    flags.add_config_flags(parser, default_preset='default')
    args = parser.parse_args(argv)
    if 'flops' in args.sections and 'speed' not in args.sections:
        parser.error('--sections flops needs speed (achieved FLOP/s come from the measured training speed)')
    args.config = flags.config_from_args(args, parser, base_overrides=BENCH_OVERRIDES)
    args.pipeline_config = flags.config_from_args(args, parser)
    bench_only = argparse.ArgumentParser(add_help=False)
    _add_bench_flags(bench_only)
    args.pipeline_flags = bench_only.parse_known_args(argv)[1]
    return args


def run_pipeline(config: config_lib.PipelineConfig, output_dir: str, epochs: Optional[int],
                 config_flags: Sequence[str] = ()) -> Dict:
    """`local_runner.py` (the given config flags, the benchmark's data) in a child process: wall time, peak
    memory and per-component seconds."""
    data = config.data
    command = [sys.executable, os.path.join(ROOT, 'local_runner.py'), *config_flags, '--output_dir', output_dir,
               '--name', config.name]
    command += ['--epochs', str(epochs)] if epochs else []
    if data.source_dir:
        command += ['--source_dir', data.source_dir]
    elif data.data_dir:
        command += ['--data_dir', data.data_dir]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - start
    summary = run_summary.read_run_summary(os.path.join(output_dir, config.name, 'metadata.db'), config.name)
    return {'wall_s': wall, 'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            'components_s': {c.node_id: round(c.seconds, 1) for c in summary.components},
            'summary': summary}


@dataclasses.dataclass
class _Inputs:
    """What every section after the end-to-end run reads."""

    summary: run_summary.RunSummary
    served_dir: str
    encoder_weights: str
    pipeline_root: str
    raw_train: List[str]
    eval_records: List[bytes]
    eval_images: np.ndarray
    eval_masks: np.ndarray


def measure_pipeline(args: argparse.Namespace, config: config_lib.PipelineConfig, results: Dict) -> _Inputs:
    print('1/6 end-to-end local_runner.py ...', flush=True)
    pipeline_dir = os.path.join(args.work_dir, 'pipeline')
    pipeline_run = run_pipeline(config, pipeline_dir, args.pipeline_epochs, args.pipeline_flags)
    summary = pipeline_run.pop('summary')
    results['pipeline'] = pipeline_run
    served_dir = summary.pushed_to or paths.serving_model_dir(summary.model_uri)
    given = config.training.encoder_weights
    weights = given if given.endswith('.h5') else encoder_weights.save(
        served_dir, os.path.join(args.work_dir, 'encoder.h5'))
    results['encoder_weights'] = given if given.endswith('.h5') else 'the encoder trained by the end-to-end run'
    eval_records = paths.read_gzip_records(paths.split_dir(summary.examples_uri, 'eval'))
    eval_images, eval_masks = measure.decode_eval_split(eval_records)
    return _Inputs(summary, served_dir, weights, os.path.join(pipeline_dir, config.name, 'pipeline_root'),
                   tf.io.gfile.glob(os.path.join(paths.split_dir(summary.examples_uri, 'train'), '*')),
                   eval_records, eval_images, eval_masks)


def measure_training(config: config_lib.PipelineConfig, inputs: _Inputs, work_dir: str, results: Dict,
                     timed_steps: int = 0, other_precision: Optional[bool] = None):
    """Trains the tutorial's code and this project (in its precision and, where `other_precision`, the other)
    side by side, an epoch of each in turn, scores them, then times `timed_steps` more steps per side one at a
    time in turn; every side keeps its own input pipeline's iterator throughout (`bench/timing.py` says why not
    `fit`). `other_precision` None: only where the CPU has bfloat16 instructions. Returns (project model,
    settings)."""
    if other_precision is None:
        other_precision = precision.native_bfloat16() is not False
    print('2/6 training and quality, interleaved: tutorial baseline, this project'
          + (' in both precisions' if other_precision else '') + ' ...', flush=True)
    settings = config.training
    data = config.data
    steps = max(1, inputs.summary.num_examples['train'] // settings.batch_size)
    dataset, _ = tutorial_baseline.load_dataset(data.source_dir, data.data_dir, os.path.join(work_dir, 'tfds'))
    train_batches, _ = tutorial_baseline.input_pipelines(dataset, settings.batch_size)
    training = dataclasses.replace(settings, encoder_weights=inputs.encoder_weights, train_encoder=False,
                                   steps_per_epoch=steps).with_speed(mixed_bfloat16=train.use_mixed_bfloat16(settings))
    transform_root = os.path.join(inputs.pipeline_root, node_ids.TRANSFORM)
    transform_output = tft.TFTransformOutput(paths.version_dir(os.path.join(transform_root, 'transform_graph')))
    transformed_train = tf.io.gfile.glob(os.path.join(
        paths.split_dir(paths.version_dir(os.path.join(transform_root, 'transformed_examples')), 'train'), '*'))

    def project_side(side_settings):
        return train.build_model(side_settings), data_lib.input_fn(
            transformed_train, transform_output, settings.batch_size, training=True,
            shuffle_buffer=side_settings.shuffle_buffer, repeat=True)

    sides = {'baseline': (tutorial_baseline.build_and_compile(inputs.encoder_weights, settings.batchnorm_momentum),
                          train_batches),
             'project': project_side(training)}
    mixed = training.speed.mixed_bfloat16
    if other_precision:
        sides['project_' + ('float32' if mixed else 'bfloat16')] = project_side(
            training.with_speed(mixed_bfloat16=not mixed))
    iterators = {name: iter(dataset) for name, (_, dataset) in sides.items()}
    models = {name: model for name, (model, _) in sides.items()}
    # The first step (timed apart) takes the tutorial's first batch; each pass over the data ends in a partial one.
    tutorial_batches = timing.batch_sizes(inputs.summary.num_examples['train'], settings.batch_size,
                                          1 + settings.epochs * steps)
    timed = timing.interleaved_epochs(models, iterators, settings.epochs, steps, settings.batch_size,
                                      images={'baseline': timing.per_epoch(tutorial_batches[1:], steps)})
    for name, model in models.items():
        timed[name]['quality'] = measure.score(model, inputs.eval_images, inputs.eval_masks)
    if timed_steps:
        by_step, _ = timing.interleaved_steps(models, iterators, timed_steps, settings.batch_size)
        for name, result in timing.add_ratios(by_step, 'baseline').items():
            timed[name]['step_by_step'] = result
    results['training'] = {
        'settings': {'batch_size': settings.batch_size, 'epochs': settings.epochs, 'steps_per_epoch': steps,
                     'timed_steps': timed_steps, 'other_precision': other_precision,
                     'mixed_bfloat16': mixed, 'jit_compile': training.speed.jit_compile},
        **timed,
    }
    return sides['project'][0], training


def measure_preprocessing(inputs: _Inputs, work_dir: str, results: Dict) -> None:
    print('3/6 preprocessing ...', flush=True)
    train_records = paths.read_gzip_records(inputs.raw_train)
    preprocessing_dir = os.path.join(work_dir, 'preprocessing')
    results['preprocessing'] = {
        'tfdata_images_per_s': measure.tfdata_preprocess_throughput(inputs.raw_train),
        'transform_1_worker_images_per_s': measure.transform_throughput(
            train_records, os.path.join(preprocessing_dir, '1'), platform.direct_beam_args(1)),
        'transform_2_workers_images_per_s': measure.transform_throughput(
            train_records, os.path.join(preprocessing_dir, '2'), platform.direct_beam_args(2)),
        # Beam and TFT cost seconds per pipeline whatever its size; the per-image rate shows what scales.
        'transform_1_worker_marginal_images_per_s': measure.marginal_throughput(
            lambda records: measure.transform_throughput(records, os.path.join(preprocessing_dir, f'm{len(records)}'),
                                                         platform.direct_beam_args(1)),
            train_records),
    }


def measure_serving(inputs: _Inputs, keras_model: keras.Model, results: Dict) -> None:
    print('4/6 serving ...', flush=True)
    serve = tf.saved_model.load(inputs.served_dir).signatures['serving_default']
    compiled_call = tf.function(lambda images: keras_model(images, training=False))
    decoded = inputs.eval_images[:1]
    serving = {'model_predict_1': measure.latencies(lambda: keras_model.predict(decoded, verbose=0)),
               'model_call_1': measure.latencies(lambda: compiled_call(decoded))}
    for width, height in SERVING_SIZES:
        image, _, _ = sample_data.make_example(seed=3, index=width)
        jpeg = sample_data.encode_jpeg(np.asarray(tf.image.resize(image, (height, width)), np.uint8))
        serving[f'serving_default_jpeg_{width}x{height}'] = measure.latencies(lambda: serve(image_bytes=tf.constant([jpeg])))
    batch_jpegs = tf.constant([sample_data.encode_jpeg(sample_data.make_example(seed=4, index=i)[0]) for i in range(32)])
    batch_decoded = np.repeat(inputs.eval_images[:1], 32, axis=0)
    serving['serving_default_batch32_images_per_s'] = 32000 / measure.latencies(lambda: serve(image_bytes=batch_jpegs), 10)['p50_ms']
    serving['model_predict_batch32_images_per_s'] = 32000 / measure.latencies(
        lambda: keras_model.predict(batch_decoded, verbose=0), 10)['p50_ms']
    results['serving'] = serving


def measure_evaluation(inputs: _Inputs, keras_model: keras.Model, work_dir: str, results: Dict) -> None:
    print('5/6 evaluation ...', flush=True)
    num_eval = inputs.summary.num_examples['eval']
    start = time.perf_counter()
    images, masks = measure.decode_eval_split(inputs.eval_records)
    measure.score(keras_model, images, masks)
    plain_s = time.perf_counter() - start
    eval_config = build_eval_config(config_lib.EvaluationConfig(), classes.OXFORD_IIIT_PET.names)
    for metric in eval_config.metrics_specs[0].metrics:
        for gate in metric.per_slice_thresholds:
            gate.threshold.ClearField('change_threshold')  # no baseline model here; the work is the same
    results['evaluation'] = {
        'evaluator_s_per_1000': results['pipeline']['components_s'][node_ids.EVALUATOR] / num_eval * 1000,
        # TFMA's Beam pipeline and model load cost seconds whatever the split's size; this is what scales.
        'tfma_marginal_s_per_1000': 1000 / measure.marginal_throughput(
            lambda records: measure.evaluator_throughput(records, inputs.served_dir, eval_config,
                                                         os.path.join(work_dir, f'tfma_{len(records)}')),
            inputs.eval_records),
        'plain_loop_s_per_1000': plain_s / num_eval * 1000, 'num_eval': num_eval}


def measure_flops(inputs: _Inputs, results: Dict) -> None:
    print('6/6 FLOPs ...', flush=True)
    counted = measure.flops(model_lib.build_unet(encoder_weights=inputs.encoder_weights))
    training = results['training']
    results['flops'] = {
        **counted,
        'project_achieved_gflops': counted['train_flops_per_image'] * training['project']['images_per_s'] / 1e9,
        'baseline_achieved_gflops': counted['train_flops_per_image'] * training['baseline']['images_per_s'] / 1e9}


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    tfds.display_progress_bar(False)
    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(args.work_dir)
    config = args.config
    if config.data.sample is not None:
        source_dir = os.path.join(args.work_dir, 'pets')
        sample_data.write_folders(source_dir, args.num_train, args.num_test, seed=0)
        config = config.with_overrides({'data.source_dir': source_dir})
    results: Dict = results_file.header('bench.run', argv)
    results['machine']['tensorflow'] = tf.__version__
    results.update(args={k: v for k, v in vars(args).items() if k not in ('config', 'pipeline_config')},
                   config=dataclasses.asdict(config))
    inputs = measure_pipeline(args, config, results)
    sections = set(args.sections)
    if 'speed' in sections:
        project_model, training = measure_training(config, inputs, args.work_dir, results, args.timed_steps,
                                                   args.other_precision)
        # The exported model computes in float32 whatever the training precision; compare like with like.
        keras_model = train.float32_twin(project_model, training)
    elif sections & {'serving', 'evaluation'}:
        # The end-to-end run's model, as a Keras model for the sections that call it directly.
        keras_model = train.build_model(args.pipeline_config.training.with_speed(mixed_bfloat16=False),
                                        base_model=inputs.served_dir)
    if 'preprocessing' in sections:
        measure_preprocessing(inputs, args.work_dir, results)
    if 'serving' in sections:
        measure_serving(inputs, keras_model, results)
    if 'evaluation' in sections:
        measure_evaluation(inputs, keras_model, args.work_dir, results)
    if 'flops' in sections:
        measure_flops(inputs, results)
    if 'quality' in sections:
        measure_quality(args, config, inputs, results)
    if 'ablation' in sections:
        measure_ablation(args, config, inputs, results)
    results['ratios'] = ratios(results)
    results_file.write(results, args.results_dir, _markdown(results))
    return results


def ratios(results: Dict) -> Dict[str, float]:
    """The headline comparisons of the sections that ran (higher is better unless the name says otherwise)."""
    found: Dict[str, float] = {}
    if 'training' in results:
        training = results['training']
        found.update({
            'train_throughput_vs_baseline': training['project']['images_per_s'] / training['baseline']['images_per_s'],
            **({'train_step_median_vs_baseline': training['project']['step_by_step']['vs_baseline_median'],
                'train_step_best_quartile_vs_baseline': training['project']['step_by_step']['vs_baseline_best_quartile']}
               if 'step_by_step' in training['project'] else {}),
            'pixel_accuracy_points_vs_baseline': 100 * (training['project']['quality']['pixel_accuracy']
                                                        - training['baseline']['quality']['pixel_accuracy']),
            'mean_iou_points_vs_baseline': 100 * (training['project']['quality']['mean_iou']
                                                  - training['baseline']['quality']['mean_iou'])})
    if 'preprocessing' in results:
        pre = results['preprocessing']
        found.update({
            'transform_1_worker_vs_tfdata': pre['transform_1_worker_images_per_s'] / pre['tfdata_images_per_s'],
            'transform_2_workers_vs_tfdata': pre['transform_2_workers_images_per_s'] / pre['tfdata_images_per_s'],
            'transform_1_worker_marginal_vs_tfdata': pre['transform_1_worker_marginal_images_per_s']
            / pre['tfdata_images_per_s']})
    if 'serving' in results:
        serving = results['serving']
        found.update({
            'serving_p50_500x375_vs_predict (lower is better)': serving['serving_default_jpeg_500x375']['p50_ms']
            / serving['model_predict_1']['p50_ms'],
            'serving_p50_500x375_vs_model_call (lower is better)': serving['serving_default_jpeg_500x375']['p50_ms']
            / serving['model_call_1']['p50_ms'],
            'serving_batch32_vs_predict': serving['serving_default_batch32_images_per_s']
            / serving['model_predict_batch32_images_per_s']})
    if 'evaluation' in results:
        evaluation = results['evaluation']
        found.update({
            'evaluator_vs_plain_loop (lower is better)': evaluation['evaluator_s_per_1000']
            / evaluation['plain_loop_s_per_1000'],
            'tfma_marginal_vs_plain_loop (lower is better)': evaluation['tfma_marginal_s_per_1000']
            / evaluation['plain_loop_s_per_1000']})
    if 'quality' in results:
        project, tutorial = results['quality']['project']['quality'], results['quality']['tutorial']['quality']
        found.update({
            'from_scratch_pixel_accuracy_points_vs_tutorial_code': 100 * (project['pixel_accuracy']
                                                                          - tutorial['pixel_accuracy']),
            'from_scratch_mean_iou_points_vs_tutorial_code': 100 * (project['mean_iou'] - tutorial['mean_iou'])})
    return found


def measure_quality(args: argparse.Namespace, config: config_lib.PipelineConfig, inputs: _Inputs,
                    results: Dict) -> None:
    """The end-to-end run's model next to the tutorial's code trained from scratch on the same images."""
    print('quality: the tutorial\'s code from scratch, same images and epochs ...', flush=True)
    training = args.pipeline_config.training
    epochs = args.pipeline_epochs or training.epochs
    data = config.data
    tutorial = quality.tutorial_side(data.source_dir, data.data_dir, os.path.join(args.work_dir, 'tutorial_quality'),
                                     epochs, training.batch_size, inputs.eval_images, inputs.eval_masks, training.seed)
    history = run_summary.read_history(inputs.summary.model_run_uri) if inputs.summary.model_run_uri else {}
    results['quality'] = {
        'preset': args.preset, 'epochs': epochs, 'batch_size': training.batch_size,
        'num_eval': len(inputs.eval_images),
        'project': {'quality': quality.score_saved_model(inputs.served_dir, inputs.eval_images, inputs.eval_masks),
                    'epochs_trained': len(history.get('loss', [])), 'trainer_s': results['pipeline']['components_s'].get(
                        node_ids.TRAINER), 'evaluator': inputs.summary.candidate_metrics},
        'tutorial': tutorial}


def measure_ablation(args: argparse.Namespace, config: config_lib.PipelineConfig, inputs: _Inputs,
                     results: Dict) -> None:
    """Retrains the Trainer once per settings variant on the end-to-end run's Transform output."""
    print('ablation: one Trainer run per settings variant ...', flush=True)
    training = args.pipeline_config.training
    epochs = args.ablation_epochs or args.pipeline_epochs
    if epochs:
        training = dataclasses.replace(training, epochs=epochs, warmup_epochs=min(training.warmup_epochs, epochs - 1))
    transform_root = os.path.join(inputs.pipeline_root, node_ids.TRANSFORM)
    transformed = paths.version_dir(os.path.join(transform_root, 'transformed_examples'))
    results['ablation'] = quality.ablation(
        training, config_lib.preset('default').training,
        tf.io.gfile.glob(os.path.join(paths.split_dir(transformed, 'train'), '*')),
        tf.io.gfile.glob(os.path.join(paths.split_dir(transformed, 'eval'), '*')),
        paths.version_dir(os.path.join(transform_root, 'transform_graph')), os.path.join(args.work_dir, 'ablation'),
        inputs.eval_images, inputs.eval_masks, only=args.ablation_variants or 0)


def _quality_lines(results: Dict) -> List[str]:
    lines: List[str] = []
    if 'quality' in results:
        quality_run = results['quality']
        sides = {'this project (`--preset ' + quality_run['preset'] + '`, the pipeline\'s model)': quality_run['project'],
                 "the tutorial's code (encoder trainable)": quality_run['tutorial']}
        metrics_shown = list(quality_run['project']['quality'])
        lines += ['', f'Quality from random weights on the eval split ({quality_run["num_eval"]} images, never trained '
                  f'or stopped on): {quality_run["epochs"]} epochs configured, batch {quality_run["batch_size"]}; '
                  f'the project trained {quality_run["project"]["epochs_trained"]}.', '',
                  '| side | ' + ' | '.join(metrics_shown) + ' |', '|---|' + '---|' * len(metrics_shown)]
        lines += [f'| {name} | ' + ' | '.join(f'{side["quality"][m]:.4f}' for m in metrics_shown) + ' |'
                  for name, side in sides.items()]
    if 'ablation' in results:
        rows = results['ablation']
        metrics_shown = list(rows[0]['quality'])
        lines += ['', f'Ablation (the Trainer\'s code once per variant, {rows[0]["settings"]["epochs"]} epochs configured each, '
                  'scored on the eval split; points vs the first row):', '',
                  '| variant | epochs trained | seconds | ' + ' | '.join(metrics_shown) + ' | pixel acc. points | mean IoU points '
                  '| pixel acc. / mean IoU with test-time flip off | on |',
                  '|---|---|---|' + '---|' * (len(metrics_shown) + 4)]
        first = rows[0]['quality']
        for row in rows:
            q = row['quality']
            lines.append(f'| {row["variant"]} | {row["epochs_trained"]} | {row["seconds"]:.0f} | '
                         + ' | '.join(f'{q[m]:.4f}' for m in metrics_shown)
                         + f' | {100 * (q["pixel_accuracy"] - first["pixel_accuracy"]):+.1f}'
                         f' | {100 * (q["mean_iou"] - first["mean_iou"]):+.1f} | '
                         + ' | '.join(f'{flip["pixel_accuracy"]:.4f} / {flip["mean_iou"]:.4f}'
                                      for flip in row['quality_by_test_time_flip'].values()) + ' |')
    return lines


def _markdown(results: Dict) -> str:
    pipeline_run = results['pipeline']
    lines = [f'# petseg benchmark, {results["date"]}', '',
             f'Machine: {results["machine"]}. Command: `{results["command"]}`', '', '| ratio | value |', '|---|---|']
    lines += [f'| {name} | {value:.2f} |' for name, value in results['ratios'].items()]
    if 'training' in results:
        training = results['training']
        sides = [name for name in training if name != 'settings']
        lines += ['', f'Training: same data, batch {training["settings"]["batch_size"]}, {training["settings"]["epochs"]} '
                  f'epochs, the same frozen encoder weights ({results["encoder_weights"]}); `project` uses TrainingConfig '
                  f'defaults '
                  f'(mixed_bfloat16={training["settings"]["mixed_bfloat16"]}); sides interleaved epoch by epoch, '
                  'quality scored, then single steps in turn (each side on its own input pipeline)'
                  + ('' if training['settings'].get('other_precision', True) else
                     '; the other precision not trained (no bfloat16 instructions: emulated, ~10x slower; '
                     '`bench.train_speed` measures it)') + '.', '',
                  '| training | ' + ' | '.join(sides) + ' |', '|---|' + '---|' * len(sides),
                  '| images/s (median epoch after the first) | ' + ' | '.join(f'{training[s]["images_per_s"]:.1f}' for s in sides) + ' |']
        if 'step_by_step' in training['project']:
            lines += [f'| images/s, {training["settings"]["timed_steps"]} steps a side one at a time in turn ({figure}) | '
                      + ' | '.join(f'{training[s]["step_by_step"][f"images_per_s_{key}"]:.1f}' for s in sides) + ' |'
                      for figure, key in (('median step', 'median'), ('best quartile', 'best_quartile'))]
        for metric in training['project']['quality']:
            lines.append(f'| {metric} | ' + ' | '.join(f'{training[s]["quality"][metric]:.4f}' for s in sides) + ' |')
    if 'preprocessing' in results:
        lines += ['', '| preprocessing | images/s |', '|---|---|']
        lines += [f'| {k} | {v:.1f} |' for k, v in results['preprocessing'].items()]
    if 'serving' in results:
        lines += ['', '| serving | p50 ms | p95 ms |', '|---|---|---|']
        lines += [f'| {k} | {v["p50_ms"]:.1f} | {v["p95_ms"]:.1f} |' for k, v in results['serving'].items() if isinstance(v, dict)]
        lines += [f'| {k} | {v:.1f} images/s | |' for k, v in results['serving'].items() if not isinstance(v, dict)]
    if 'evaluation' in results:
        lines += ['', f'Evaluator: {results["evaluation"]["evaluator_s_per_1000"]:.1f} s per 1,000 eval images '
                  f'(component wall time on {results["evaluation"]["num_eval"]} images, scaled); TFMA beyond its fixed '
                  f'cost: {results["evaluation"]["tfma_marginal_s_per_1000"]:.1f} s; plain predict-and-score loop: '
                  f'{results["evaluation"]["plain_loop_s_per_1000"]:.1f} s.']
    lines += ['', f'End to end (`local_runner.py`, {results["args"]["preset"]} preset on these images, '
              f'{results["args"]["pipeline_epochs"] or "its"} epochs): '
              f'{pipeline_run["wall_s"]:.0f} s, peak RSS {pipeline_run["peak_rss_mb"]:.0f} MB; per component (s): '
              + ', '.join(f'{k} {v}' for k, v in pipeline_run['components_s'].items())]
    if 'flops' in results:
        lines += ['', f'FLOPs per image: forward {results["flops"]["forward_flops_per_image"] / 1e9:.2f} G, training step '
                  f'{results["flops"]["train_flops_per_image"] / 1e9:.2f} G; achieved '
                  f'{results["flops"]["project_achieved_gflops"]:.1f} GFLOP/s (project), '
                  f'{results["flops"]["baseline_achieved_gflops"]:.1f} GFLOP/s (baseline).']
    lines += _quality_lines(results)
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    main()
