"""Benchmarks petseg against the seed tutorial's own code, side by side in one run, and prints ratios.

    .venv/bin/python -m bench.run                         # ~12 min on 2 CPU cores, generated data
    .venv/bin/python -m bench.run --num_train 32 --num_test 8 --epochs 2 --batch_size 8 --pipeline_epochs 2  # smoke
    .venv/bin/python -m bench.run --data_dir ~/tensorflow_datasets --encoder_weights ~/mobilenet_v2_..._128_no_top.h5

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
import datetime  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import platform as host  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Dict, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tf_keras as keras  # noqa: E402

from bench import measure, tutorial_baseline  # noqa: E402
from components.tfds_example_gen import sample_data  # noqa: E402
from modules import data, model as model_lib, train  # noqa: E402
from pipeline import config as config_lib, run_summary  # noqa: E402
from pipeline.eval_config import build_eval_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, 'bench', 'results')
SERVING_SIZES = ((500, 375), (250, 188), (1000, 750))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--num_train', type=int, default=480, help='generated training images (default 480)')
    parser.add_argument('--num_test', type=int, default=120, help='generated eval images (default 120)')
    parser.add_argument('--epochs', type=int, default=8, help='training epochs of every side compared (default 8)')
    parser.add_argument('--pipeline_epochs', type=int, help="epochs of the end-to-end run (default: the preset's)")
    parser.add_argument('--batch_size', type=int, default=tutorial_baseline.BATCH_SIZE, help='both sides (default 64)')
    parser.add_argument('--source_dir', help='Oxford-IIIT Pet archives/folders instead of generated data')
    parser.add_argument('--data_dir', help='TFDS data dir with oxford_iiit_pet prepared, instead of generated data')
    parser.add_argument('--encoder_weights',
                        help='MobileNetV2 no-top .h5, frozen, for every side (default: the encoder the end-to-end '
                             'run trained, a stand-in for the ImageNet weights the tutorial uses)')
    parser.add_argument('--batchnorm_momentum', type=float, default=0.9,
                        help='decoder BatchNorm momentum, both sides (default 0.9: few steps on small data)')
    parser.add_argument('--mixed_bfloat16', choices=('config', 'on', 'off'), default='config',
                        help="this project's precision (default: TrainingConfig's, i.e. bfloat16 where the CPU has it)")
    parser.add_argument('--jit_compile', choices=('config', 'on', 'off'), default='config',
                        help="this project's XLA setting (default: TrainingConfig's)")
    parser.add_argument('--work_dir', default=os.path.join(ROOT, 'outputs', 'bench'), help='scratch (default outputs/bench)')
    parser.add_argument('--results_dir', default=RESULTS_DIR, help='where results go (default bench/results)')
    return parser.parse_args(argv)


def _choice(value: str, default: bool) -> bool:
    return default if value == 'config' else value == 'on'


def _trained_encoder_weights(model_dir: str, path: str) -> str:
    """Saves the MobileNetV2 encoder of a trained U-Net SavedModel as a Keras no-top `.h5`; returns `path`."""
    unet = train.build_model(config_lib.TrainingConfig(mixed_bfloat16=False), base_model=model_dir)
    mobilenet = keras.applications.MobileNetV2(input_shape=[128, 128, 3], include_top=False, weights=None)
    for layer in unet.get_layer('encoder').layers:
        if layer.weights:
            mobilenet.get_layer(layer.name).set_weights(layer.get_weights())
    mobilenet.save_weights(path)
    return path


def run_pipeline(source_dir: Optional[str], data_dir: Optional[str], output_dir: str, epochs: Optional[int]) -> Dict:
    """`local_runner.py` (default preset, the benchmark's data) in a child process: wall time, peak memory and
    per-component seconds."""
    command = [sys.executable, os.path.join(ROOT, 'local_runner.py'), '--output_dir', output_dir]
    command += ['--epochs', str(epochs)] if epochs else []
    command += ['--source_dir', source_dir] if source_dir else ['--data_dir', data_dir]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - start
    summary = run_summary.read_run_summary(os.path.join(output_dir, 'petseg', 'metadata.db'), 'petseg')
    return {'wall_s': wall, 'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            'components_s': {c.node_id: round(c.seconds, 1) for c in summary.components},
            'summary': summary}


def _newest(pattern: str) -> str:
    return max(glob.glob(pattern), key=lambda path: int(os.path.basename(path)))


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    tfds.display_progress_bar(False)
    shutil.rmtree(args.work_dir, ignore_errors=True)
    os.makedirs(args.work_dir)
    results: Dict = {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                     'machine': {'cpus': os.cpu_count(), 'processor': host.processor() or host.machine(),
                                 'tensorflow': tf.__version__}, 'args': vars(args).copy()}
    source_dir, data_dir = args.source_dir, args.data_dir
    if not (source_dir or data_dir):
        source_dir = os.path.join(args.work_dir, 'pets')
        sample_data.write_folders(source_dir, args.num_train, args.num_test, seed=0)

    print('1/6 end-to-end local_runner.py ...', flush=True)
    pipeline_run = run_pipeline(source_dir, data_dir, os.path.join(args.work_dir, 'pipeline'), args.pipeline_epochs)
    summary = pipeline_run.pop('summary')
    results['pipeline'] = pipeline_run
    served_dir = summary.pushed_to or os.path.join(summary.model_uri, 'Format-Serving')
    weights = args.encoder_weights or _trained_encoder_weights(served_dir, os.path.join(args.work_dir, 'encoder.h5'))
    results['encoder_weights'] = args.encoder_weights or 'the encoder trained by the end-to-end run'
    pipeline_root = os.path.join(args.work_dir, 'pipeline', 'petseg', 'pipeline_root')
    raw_train = glob.glob(os.path.join(summary.examples_uri, 'Split-train', '*'))
    raw_eval = glob.glob(os.path.join(summary.examples_uri, 'Split-eval', '*'))
    eval_records = measure.raw_records(raw_eval)
    eval_images, eval_masks = measure.decode_eval_split(eval_records)
    num_train = summary.num_examples['train']
    steps = max(1, num_train // args.batch_size)

    print('2/6 training and quality, interleaved: tutorial baseline, this project (float32 and bfloat16) ...', flush=True)
    dataset, _ = tutorial_baseline.load_dataset(source_dir, data_dir, os.path.join(args.work_dir, 'tfds'))
    train_batches, _ = tutorial_baseline.input_pipelines(dataset, args.batch_size)
    defaults = config_lib.TrainingConfig()
    training = dataclasses.replace(
        defaults, epochs=args.epochs, batch_size=args.batch_size, encoder_weights=weights, train_encoder=False,
        batchnorm_momentum=args.batchnorm_momentum, steps_per_epoch=steps,
        mixed_bfloat16=_choice(args.mixed_bfloat16, train.use_mixed_bfloat16(defaults)),
        jit_compile=_choice(args.jit_compile, defaults.jit_compile))
    transform_output = tft.TFTransformOutput(_newest(os.path.join(pipeline_root, 'Transform', 'transform_graph', '*')))
    transformed_train = glob.glob(os.path.join(_newest(os.path.join(pipeline_root, 'Transform', 'transformed_examples', '*')),
                                               'Split-train', '*'))

    def project_side(settings):
        return train.build_model(settings), data.input_fn(
            transformed_train, transform_output, args.batch_size, training=True,
            shuffle_buffer=settings.shuffle_buffer, repeat=True)

    sides = {'baseline': (tutorial_baseline.build_and_compile(weights, args.batchnorm_momentum), train_batches),
             'project': project_side(training)}
    other_precision = dataclasses.replace(training, mixed_bfloat16=not training.mixed_bfloat16)
    sides['project_' + ('float32' if training.mixed_bfloat16 else 'bfloat16')] = project_side(other_precision)
    timed = measure.interleaved_training(sides, args.epochs, steps, args.batch_size)
    for name, (model, _) in sides.items():
        timed[name]['quality'] = measure.score(model, eval_images, eval_masks)
    project_model = sides['project'][0]
    results['training'] = {
        'settings': {'batch_size': args.batch_size, 'epochs': args.epochs, 'steps_per_epoch': steps,
                     'mixed_bfloat16': training.mixed_bfloat16, 'jit_compile': training.jit_compile},
        **timed,
    }
    project_ips, baseline_ips = timed['project']['images_per_s'], timed['baseline']['images_per_s']

    print('3/6 preprocessing ...', flush=True)
    train_records = measure.raw_records(raw_train)
    preprocessing_dir = os.path.join(args.work_dir, 'preprocessing')
    results['preprocessing'] = {
        'tfdata_images_per_s': measure.tfdata_preprocess_throughput(raw_train),
        'transform_1_worker_images_per_s': measure.transform_throughput(
            train_records, os.path.join(preprocessing_dir, '1'), ['--direct_running_mode=in_memory', '--direct_num_workers=1']),
        'transform_2_workers_images_per_s': measure.transform_throughput(
            train_records, os.path.join(preprocessing_dir, '2'), ['--direct_running_mode=multi_processing', '--direct_num_workers=2']),
        # Beam and TFT cost seconds per pipeline whatever its size; the per-image rate shows what scales.
        'transform_1_worker_marginal_images_per_s': measure.marginal_throughput(
            lambda records: measure.transform_throughput(records, os.path.join(preprocessing_dir, f'm{len(records)}'),
                                                         ['--direct_running_mode=in_memory', '--direct_num_workers=1']),
            train_records),
    }

    print('4/6 serving ...', flush=True)
    served = tf.saved_model.load(served_dir)
    serve = served.signatures['serving_default']
    # The exported model computes in float32 whatever the training precision; compare like with like.
    keras_model = train.float32_twin(project_model, training)
    compiled_call = tf.function(lambda images: keras_model(images, training=False))
    decoded = eval_images[:1]
    serving = {'model_predict_1': measure.latencies(lambda: keras_model.predict(decoded, verbose=0)),
               'model_call_1': measure.latencies(lambda: compiled_call(decoded))}
    for width, height in SERVING_SIZES:
        image, _, _ = sample_data.make_example(seed=3, index=width)
        jpeg = sample_data.encode_jpeg(np.asarray(tf.image.resize(image, (height, width)), np.uint8))
        serving[f'serving_default_jpeg_{width}x{height}'] = measure.latencies(lambda: serve(image_bytes=tf.constant([jpeg])))
    batch_jpegs = tf.constant([sample_data.encode_jpeg(sample_data.make_example(seed=4, index=i)[0]) for i in range(32)])
    batch_decoded = np.repeat(eval_images[:1], 32, axis=0)
    serving['serving_default_batch32_images_per_s'] = 32000 / measure.latencies(lambda: serve(image_bytes=batch_jpegs), 10)['p50_ms']
    serving['model_predict_batch32_images_per_s'] = 32000 / measure.latencies(
        lambda: keras_model.predict(batch_decoded, verbose=0), 10)['p50_ms']
    results['serving'] = serving
    print('5/6 evaluation ...', flush=True)
    num_eval = summary.num_examples['eval']
    start = time.perf_counter()
    images, masks = measure.decode_eval_split(eval_records)
    measure.score(keras_model, images, masks)
    plain_s = time.perf_counter() - start
    eval_config = build_eval_config(config_lib.EvaluationConfig())
    for metric in eval_config.metrics_specs[0].metrics:
        metric.threshold.ClearField('change_threshold')  # no baseline model here; the work is the same
    results['evaluation'] = {
        'evaluator_s_per_1000': pipeline_run['components_s']['Evaluator'] / num_eval * 1000,
        # TFMA's Beam pipeline and model load cost seconds whatever the split's size; this is what scales.
        'tfma_marginal_s_per_1000': 1000 / measure.marginal_throughput(
            lambda records: measure.evaluator_throughput(records, served_dir, eval_config,
                                                         os.path.join(args.work_dir, f'tfma_{len(records)}')),
            eval_records),
        'plain_loop_s_per_1000': plain_s / num_eval * 1000, 'num_eval': num_eval}

    print('6/6 FLOPs ...', flush=True)
    counted = measure.flops(model_lib.build_unet(encoder_weights=weights))
    results['flops'] = {**counted, 'project_achieved_gflops': counted['train_flops_per_image'] * project_ips / 1e9,
                        'baseline_achieved_gflops': counted['train_flops_per_image'] * baseline_ips / 1e9}
    results['ratios'] = ratios(results)
    write_results(results, args.results_dir)
    return results


def ratios(results: Dict) -> Dict[str, float]:
    """The headline comparisons (higher is better unless the name says otherwise)."""
    training, serving, pre = results['training'], results['serving'], results['preprocessing']
    return {
        'train_throughput_vs_baseline': training['project']['images_per_s'] / training['baseline']['images_per_s'],
        'pixel_accuracy_points_vs_baseline': 100 * (training['project']['quality']['pixel_accuracy']
                                                    - training['baseline']['quality']['pixel_accuracy']),
        'mean_iou_points_vs_baseline': 100 * (training['project']['quality']['mean_iou']
                                              - training['baseline']['quality']['mean_iou']),
        'transform_1_worker_vs_tfdata': pre['transform_1_worker_images_per_s'] / pre['tfdata_images_per_s'],
        'transform_2_workers_vs_tfdata': pre['transform_2_workers_images_per_s'] / pre['tfdata_images_per_s'],
        'transform_1_worker_marginal_vs_tfdata': pre['transform_1_worker_marginal_images_per_s'] / pre['tfdata_images_per_s'],
        'serving_p50_500x375_vs_predict (lower is better)': serving['serving_default_jpeg_500x375']['p50_ms']
        / serving['model_predict_1']['p50_ms'],
        'serving_p50_500x375_vs_model_call (lower is better)': serving['serving_default_jpeg_500x375']['p50_ms']
        / serving['model_call_1']['p50_ms'],
        'serving_batch32_vs_predict': serving['serving_default_batch32_images_per_s']
        / serving['model_predict_batch32_images_per_s'],
        'evaluator_vs_plain_loop (lower is better)': results['evaluation']['evaluator_s_per_1000']
        / results['evaluation']['plain_loop_s_per_1000'],
        'tfma_marginal_vs_plain_loop (lower is better)': results['evaluation']['tfma_marginal_s_per_1000']
        / results['evaluation']['plain_loop_s_per_1000'],
    }


def _markdown(results: Dict) -> str:
    training, pipeline_run = results['training'], results['pipeline']
    lines = [f'# petseg benchmark, {results["date"]}', '',
             f'Machine: {results["machine"]}. Command: `python -m bench.run '
             + ' '.join(f'--{k} {v}' for k, v in results['args'].items() if v is not None and k not in ('work_dir', 'results_dir'))
             + '`', '', '| ratio | value |', '|---|---|']
    lines += [f'| {name} | {value:.2f} |' for name, value in results['ratios'].items()]
    sides = [name for name in training if name != 'settings']
    lines += ['', f'Training: same data, batch {training["settings"]["batch_size"]}, {training["settings"]["epochs"]} '
              f'epochs, the same frozen encoder weights ({results["encoder_weights"]}); `project` uses TrainingConfig '
              f'defaults '
              f'(mixed_bfloat16={training["settings"]["mixed_bfloat16"]}); sides interleaved epoch by epoch.', '',
              '| training | ' + ' | '.join(sides) + ' |', '|---|' + '---|' * len(sides),
              '| images/s (median epoch after the first) | ' + ' | '.join(f'{training[s]["images_per_s"]:.1f}' for s in sides) + ' |']
    for metric in training['project']['quality']:
        lines.append(f'| {metric} | ' + ' | '.join(f'{training[s]["quality"][metric]:.4f}' for s in sides) + ' |')
    lines += ['', '| preprocessing | images/s |', '|---|---|']
    lines += [f'| {k} | {v:.1f} |' for k, v in results['preprocessing'].items()]
    lines += ['', '| serving | p50 ms | p95 ms |', '|---|---|---|']
    lines += [f'| {k} | {v["p50_ms"]:.1f} | {v["p95_ms"]:.1f} |' for k, v in results['serving'].items() if isinstance(v, dict)]
    lines += [f'| {k} | {v:.1f} images/s | |' for k, v in results['serving'].items() if not isinstance(v, dict)]
    lines += ['', f'Evaluator: {results["evaluation"]["evaluator_s_per_1000"]:.1f} s per 1,000 eval images '
              f'(component wall time on {results["evaluation"]["num_eval"]} images, scaled); TFMA beyond its fixed '
              f'cost: {results["evaluation"]["tfma_marginal_s_per_1000"]:.1f} s; plain predict-and-score loop: '
              f'{results["evaluation"]["plain_loop_s_per_1000"]:.1f} s.', '',
              f'End to end (`local_runner.py`, default preset on these images, '
              f'{results["args"]["pipeline_epochs"] or "its"} epochs): '
              f'{pipeline_run["wall_s"]:.0f} s, peak RSS {pipeline_run["peak_rss_mb"]:.0f} MB; per component (s): '
              + ', '.join(f'{k} {v}' for k, v in pipeline_run['components_s'].items()), '',
              f'FLOPs per image: forward {results["flops"]["forward_flops_per_image"] / 1e9:.2f} G, training step '
              f'{results["flops"]["train_flops_per_image"] / 1e9:.2f} G; achieved '
              f'{results["flops"]["project_achieved_gflops"]:.1f} GFLOP/s (project), '
              f'{results["flops"]["baseline_achieved_gflops"]:.1f} GFLOP/s (baseline).']
    return '\n'.join(lines) + '\n'


def write_results(results: Dict, results_dir: str) -> str:
    """Writes `<date>.json` and `<date>.md`; prints the Markdown; returns the JSON path."""
    os.makedirs(results_dir, exist_ok=True)
    stem = os.path.join(results_dir, results['date'][:10])
    with open(stem + '.json', 'w') as f:
        json.dump(results, f, indent=1, default=float)
    text = _markdown(results)
    with open(stem + '.md', 'w') as f:
        f.write(text)
    print(text)
    return stem + '.json'


if __name__ == '__main__':
    main()
