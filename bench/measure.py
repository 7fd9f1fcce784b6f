"""Measurements for `bench/run.py`: each returns plain numbers, taken the same way for both sides.

Throughput is images per second after warm-up (the first epoch, or the first calls, are not
counted); latencies are per call, as p50/p95 over repeated calls.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import time  # noqa: E402
from typing import Callable, Dict, Sequence, Tuple  # noqa: E402

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_analysis as tfma  # noqa: E402
import tensorflow_transform.beam as tft_beam  # noqa: E402
import tf_keras as keras  # noqa: E402
from tensorflow_transform.tf_metadata import schema_utils  # noqa: E402
from tfx_bsl.public import tfxio  # noqa: E402

from bench import timing, tutorial_baseline  # noqa: E402
from modules import classes, keys, metrics, preprocessing  # noqa: E402

RAW_SPEC = {keys.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string), keys.MASK_KEY: tf.io.FixedLenFeature([1], tf.string)}


def decode_eval_split(records: Sequence[bytes]) -> Tuple[np.ndarray, np.ndarray]:
    """Images [N,128,128,3] in [0,1] and nearest-resized class ids [N,128,128] via the project's preprocessing."""
    parsed = tf.io.parse_example(tf.constant(list(records)), RAW_SPEC)
    images = preprocessing.decode_images(tf.reshape(parsed[keys.IMAGE_KEY], [-1]))
    masks = preprocessing.decode_masks(tf.reshape(parsed[keys.MASK_KEY], [-1]))
    return images.numpy(), masks.numpy()[..., 0]


def score(model: keras.Model, images: np.ndarray, masks: np.ndarray, batch_size: int = 32) -> Dict[str, float]:
    """Pixel accuracy, mean IoU and per-class IoU of `model` on the whole eval split."""
    predicted = np.concatenate([np.argmax(model(images[i:i + batch_size], training=False), -1)
                                for i in range(0, len(images), batch_size)])
    return metrics.numpy_scores(masks, predicted, classes.OXFORD_IIIT_PET.names)


def tfdata_preprocess_throughput(files: Sequence[str], repeats: int = 2) -> float:
    """images/s of a plain tf.data parse + decode + resize loop (the tutorial's load_image) over `files`."""
    def load(record):
        parsed = tf.io.parse_single_example(record, RAW_SPEC)
        return tutorial_baseline.load_image({
            'image': tf.io.decode_jpeg(parsed[keys.IMAGE_KEY][0], channels=3),
            'segmentation_mask': tf.io.decode_png(parsed[keys.MASK_KEY][0], channels=1)})
    dataset = (tf.data.TFRecordDataset(list(files), compression_type='GZIP')
               .map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    best = 0.0
    for _ in range(repeats):
        start, count = time.perf_counter(), 0
        for _ in dataset:
            count += 1
        best = max(best, count / (time.perf_counter() - start))
    return best


def write_records(records: Sequence[bytes], path: str) -> str:
    """Writes `records` to a gzipped TFRecord file (`.gz`, which Beam's readers decompress); returns `path`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options='GZIP') as writer:
        for record in records:
            writer.write(record)
    return path


def transform_throughput(records: Sequence[bytes], work_dir: str, beam_args: Sequence[str]) -> float:
    """images/s of the real preprocessing_fn, read through TFXIO as the Transform component does.

    Runs tft_beam.AnalyzeAndTransformDataset under `beam_args` over `records` (written to a file first),
    timing the whole Beam pipeline.
    """
    source = tfxio.TFExampleRecord(file_pattern=[write_records(records, os.path.join(work_dir, 'input.gz'))],
                                   schema=schema_utils.schema_from_feature_spec(RAW_SPEC),
                                   telemetry_descriptors=['petseg_bench'])
    options = beam.options.pipeline_options.PipelineOptions(list(beam_args))
    start = time.perf_counter()
    with beam.Pipeline(options=options) as pipeline, tft_beam.Context(temp_dir=os.path.join(work_dir, 'tmp')):
        raw = pipeline | source.BeamSource()
        (transformed, _), _ = ((raw, source.TensorAdapterConfig())
                               | tft_beam.AnalyzeAndTransformDataset(preprocessing.preprocessing_fn,
                                                                     output_record_batches=True))
        _ = transformed | beam.combiners.Count.Globally()
    return len(records) / (time.perf_counter() - start)


def evaluator_throughput(records: Sequence[bytes], model_dir: str, eval_config, work_dir: str) -> float:
    """images/s of TFMA (what the Evaluator component runs) with the pipeline's EvalConfig on `records`."""
    data_location = write_records(records, os.path.join(work_dir, 'eval.gz'))
    start = time.perf_counter()
    model = tfma.default_eval_shared_model(eval_saved_model_path=model_dir, eval_config=eval_config)
    tfma.run_model_analysis(eval_shared_model=model, eval_config=eval_config, data_location=data_location,
                            output_path=os.path.join(work_dir, 'tfma'))
    return len(records) / (time.perf_counter() - start)


def marginal_throughput(images_per_s: Callable[[Sequence[bytes]], float], records: Sequence[bytes],
                        repeats: int = 2) -> float:
    """images/s beyond a fixed per-run cost, from the best of `repeats` runs over `records` and over 4 copies."""
    def best_seconds(batch: Sequence[bytes]) -> float:
        return min(len(batch) / images_per_s(batch) for _ in range(repeats))

    larger = list(records) * 4
    return (len(larger) - len(records)) / max(best_seconds(larger) - best_seconds(records), 1e-9)


def latencies(call: Callable[[], object], repeats: int = 30, warmup: int = 3) -> Dict[str, float]:
    """p50 / p95 milliseconds of `call()`."""
    samples = 1000 * np.asarray(timing.seconds_in_turn({'call': call}, repeats, warmup)['call'])
    return {'p50_ms': float(np.percentile(samples, 50)), 'p95_ms': float(np.percentile(samples, 95))}


def flops(model: keras.Model) -> Dict[str, float]:
    """Forward and training-step FLOPs per image, counted by TF's profiler on the traced graphs."""
    def count(function, *specs) -> float:
        graph = tf.function(function).get_concrete_function(*specs).graph
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options['output'] = 'none'
        return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)

    image = tf.TensorSpec([1, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 3], tf.float32)
    mask = tf.TensorSpec([1, classes.DEFAULT_IMAGE_SIZE, classes.DEFAULT_IMAGE_SIZE, 1], tf.int64)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    return {'forward_flops_per_image': count(lambda x: model(x, training=False), image),
            'train_flops_per_image': count(train_step, image, mask)}
