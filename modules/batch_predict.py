"""Batch segmentation on Beam: a folder, glob or TFRecords of images -> full-size masks and class shares.

    python -m modules.batch_predict --model outputs/petseg/serving_model --inputs 'photos/*.jpg' \
        --output_dir batch_out [--direct_num_workers 2]

Each readable image goes through the pushed model's `serving_full_size` signature with Beam's `RunInference`
and gives
`masks/<name>.png` at the image's own size (class ids, in the order of the classes the model carries) and
one line of `shares.csv` (image, height, width, then one column per class, named by the model's classes). Unreadable images are counted and listed in
`skipped.csv` with the reason; they never stop the run. Inputs: a directory (its images), a glob, or TFRecord
files of tf.Examples with an `image` feature (and `file_name`, as TFDS and this pipeline's ExampleGen write).
The DirectRunner runs locally (`--direct_num_workers N`); Dataflow: add `--dataflow_project`,
`--dataflow_region`, `--temp_location` and `--image` (the pipeline's container image), or any Beam flags
after `--`. Exit code 1 when an image was skipped. `--log_dir` logs a sample of the images as the server does,
for the monitor (`python -m pipeline.monitor`).

The model handler is ours (`SavedModelHandler`), not Beam's `TFModelHandlerTensor`: that module imports
tensorflow_hub, which TFX 1.16 pins below 0.16, and tensorflow_hub 0.15 imports `tf.estimator`, gone in TF 2.16.
It also loads SavedModels as Keras models, while ours is called through its signatures.
"""

import argparse
import collections
import csv
import hashlib
import io
import logging
import os
import sys
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')  # the SavedModel holds a TFT layer built with Keras 2

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from PIL import Image  # noqa: E402

from modules import beam_args, classes, keys, predict, request_log, signatures  # noqa: E402

IMAGE_EXTENSIONS = predict.IMAGE_EXTENSIONS
MASKS_DIR = 'masks'
SHARES_FILE = 'shares.csv'
SKIPPED_FILE = 'skipped.csv'
SHARES_COLUMNS = ('image', 'height', 'width')  # then one column per class of the model


def _is_tfrecord(path: str) -> bool:
    name = os.path.basename(path).lower()
    return 'tfrecord' in name or name.endswith(('.gz', '.tfrec'))


def list_inputs(inputs: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(image files, TFRecord files) named by directories, globs or paths (local or gs://), in order."""
    images, records = [], []
    for item in inputs:
        if tf.io.gfile.isdir(item):
            found = sorted(os.path.join(item, f.rstrip('/')) for f in tf.io.gfile.listdir(item))
            found = [f for f in found if f.lower().endswith(IMAGE_EXTENSIONS) or _is_tfrecord(f)]
        else:
            found = sorted(tf.io.gfile.glob(item)) if any(c in item for c in '*?[') else [item]
        if not found:
            raise FileNotFoundError(f'No images or TFRecords match {item!r}')
        for path in found:
            target = records if _is_tfrecord(path) else images
            if path not in target:
                target.append(path)
    return images, records


def mask_names(image_files: Sequence[str]) -> Dict[str, str]:
    """Image path -> its mask's name: the file's stem, with the extension kept where two stems collide."""
    stems = {path: os.path.splitext(os.path.basename(path))[0] for path in image_files}
    counts = collections.Counter(stems.values())
    return {path: stem if counts[stem] == 1 else os.path.basename(path).replace('.', '_')
            for path, stem in stems.items()}


def count_records(record_files: Sequence[str]) -> int:
    return sum(sum(1 for _ in tf.data.TFRecordDataset(f, compression_type=_compression(f))) for f in record_files)


def _compression(path: str) -> str:
    return 'GZIP' if path.endswith('.gz') else ''


def check_image(name: str, data: bytes):
    """(name, bytes) when TensorFlow's decoder (the one the model uses) reads the image; else a skip record."""
    if not data:
        return beam.pvalue.TaggedOutput('skipped', (name, 'empty file'))
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except tf.errors.OpError as e:
        return beam.pvalue.TaggedOutput('skipped', (name, signatures.error_reason(e)))
    return name, data


class ReadImageFile(beam.DoFn):
    def __init__(self, names: Dict[str, str]):
        self._names = names

    def process(self, path: str):
        try:
            with tf.io.gfile.GFile(path, 'rb') as f:
                data = f.read()
        except (OSError, tf.errors.OpError) as e:
            yield beam.pvalue.TaggedOutput('skipped', (self._names[path], f'unreadable: {e}'))
            return
        yield check_image(self._names[path], data)


class ParseImageExample(beam.DoFn):
    """A serialized tf.Example -> (its file_name or a digest of the image, the image bytes)."""

    def process(self, record: bytes):
        try:
            example = tf.train.Example.FromString(record)
        except Exception as e:  # noqa: BLE001  (a corrupt record is skipped, whatever protobuf raises)
            yield beam.pvalue.TaggedOutput('skipped', (hashlib.sha1(record).hexdigest()[:12], f'not a tf.Example: {e}'))
            return
        features = example.features.feature
        data = features[keys.IMAGE_KEY].bytes_list.value[0] if keys.IMAGE_KEY in features and \
            features[keys.IMAGE_KEY].bytes_list.value else b''
        file_name = features[keys.FILE_NAME_KEY].bytes_list.value[0].decode() if keys.FILE_NAME_KEY in features and \
            features[keys.FILE_NAME_KEY].bytes_list.value else hashlib.sha1(data or record).hexdigest()[:12]
        name = os.path.splitext(os.path.basename(file_name))[0]
        yield check_image(name, data)


class SavedModelHandler(ModelHandler):
    """RunInference's handler for the pipeline's SavedModel: encoded images in, full-size class-id masks out."""

    def __init__(self, model_dir: str, max_batch_size: int = 8):
        super().__init__()
        self._model_dir = model_dir
        self._max_batch_size = max_batch_size

    def load_model(self):
        return tf.saved_model.load(self._model_dir)

    def run_inference(self, batch: Sequence[bytes], model, inference_args: Optional[Dict[str, Any]] = None
                      ) -> Iterable[PredictionResult]:
        """One `serving_full_size` call per batch; each mask is cropped to its own image's size."""
        outputs = model.signatures[signatures.SERVING_FULL_SIZE](image_bytes=tf.constant(list(batch)))
        masks, heights, widths = outputs['mask'].numpy(), outputs['height'].numpy(), outputs['width'].numpy()
        # The image rides along for the request log (`WriteMask`); the batch holds it in memory anyway.
        return [PredictionResult(batch[i], masks[i, :heights[i], :widths[i]], self._model_dir) for i in range(len(batch))]

    def batch_elements_kwargs(self) -> Dict[str, int]:
        return {'min_batch_size': 1, 'max_batch_size': self._max_batch_size}

    def get_metrics_namespace(self) -> str:
        return 'petseg_batch_predict'


class WriteMask(beam.DoFn):
    """Writes one mask PNG and returns its line of shares.csv; with `log_dir`, logs a sample of the images as the
    server does (`modules.request_log`), for the monitor."""

    def __init__(self, output_dir: str, num_classes: int, model_dir: str = '', log_dir: Optional[str] = None,
                 log_sample_rate: float = 0.1):
        self._masks_dir = os.path.join(output_dir, MASKS_DIR)
        self._num_classes = num_classes
        self._model_dir, self._log_dir, self._log_sample_rate = model_dir, log_dir, log_sample_rate
        self._log = None

    def setup(self):
        tf.io.gfile.makedirs(self._masks_dir)
        if self._log_dir:
            self._description = classes.read_from_model(self._model_dir)[0]
            version = os.path.basename(self._model_dir.rstrip('/'))
            self._version = int(version) if version.isdigit() else 0
            # One writer per worker, its own files: names carry the time to the microsecond.
            self._log = request_log.RequestLog(self._log_dir, self._log_sample_rate)

    def teardown(self):
        if self._log is not None:
            self._log.flush()

    def process(self, keyed: Tuple[str, PredictionResult]):
        name, result = keyed
        mask = np.asarray(result.inference, np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(mask, 'L').save(buffer, format='PNG')
        with tf.io.gfile.GFile(os.path.join(self._masks_dir, f'{name}.png'), 'wb') as f:
            f.write(buffer.getvalue())
        shares = np.bincount(mask.ravel(), minlength=self._num_classes)[:self._num_classes] / mask.size
        if self._log is not None and isinstance(result.example, bytes):
            self._log.offer([result.example], [mask], self._description, self._version, latency_ms=0.0)
        yield _csv_line([name, mask.shape[0], mask.shape[1]] + [f'{share:.4f}' for share in shares])


def _csv_line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator='').writerow(values)
    return buffer.getvalue()


def _failed_batch_lines(failed) -> Iterable[Tuple[str, str]]:
    batch, error = failed
    reason = signatures.error_reason(error) if isinstance(error, tf.errors.OpError) else str(error)[:300]
    for name, _ in batch:
        yield name, f'inference failed: {reason}'


def build_pipeline(pipeline: beam.Pipeline, image_files: Sequence[str], record_files: Sequence[str], model_dir: str,
                   output_dir: str, batch_size: int = 8, log_dir: Optional[str] = None,
                   log_sample_rate: float = 0.1) -> None:
    """Adds the read -> check -> RunInference -> write steps to `pipeline`."""
    images, skipped = [], []
    if image_files:
        read = (pipeline | 'ImageFiles' >> beam.Create(list(image_files))
                | 'ReadImages' >> beam.ParDo(ReadImageFile(mask_names(image_files))).with_outputs('skipped', main='ok'))
        images.append(read.ok)
        skipped.append(read.skipped)
    if record_files:
        parsed = (pipeline | 'RecordFiles' >> beam.Create(list(record_files))
                  | 'ReadRecords' >> beam.io.ReadAllFromTFRecord()
                  | 'ParseExamples' >> beam.ParDo(ParseImageExample()).with_outputs('skipped', main='ok'))
        images.append(parsed.ok)
        skipped.append(parsed.skipped)
    names = classes.read_from_model(model_dir)[0].names
    handler = KeyedModelHandler(SavedModelHandler(model_dir, max_batch_size=batch_size))
    predictions, failures = (images | 'AllImages' >> beam.Flatten()
                             | 'Segment' >> RunInference(handler).with_exception_handling())
    skipped.append(failures.failed_inferences | 'FailedBatches' >> beam.FlatMap(_failed_batch_lines))
    (predictions | 'WriteMasks' >> beam.ParDo(WriteMask(output_dir, len(names), model_dir, log_dir, log_sample_rate))
     | 'WriteShares' >> beam.io.WriteToText(os.path.join(output_dir, SHARES_FILE), shard_name_template='',
                                           header=_csv_line(list(SHARES_COLUMNS) + list(names))))
    (skipped | 'AllSkipped' >> beam.Flatten() | 'SkipLines' >> beam.Map(_csv_line)
     | 'WriteSkipped' >> beam.io.WriteToText(os.path.join(output_dir, SKIPPED_FILE), shard_name_template='',
                                            header=_csv_line(['image', 'reason'])))


def _count_masks(output_dir: str) -> int:
    masks = os.path.join(output_dir, MASKS_DIR)
    return len(tf.io.gfile.listdir(masks)) if tf.io.gfile.isdir(masks) else 0


def run(inputs: Sequence[str], model: str, output_dir: str, pipeline_args: Sequence[str], batch_size: int = 8,
        progress_every_s: float = 2.0, out=None, log_dir: Optional[str] = None,
        log_sample_rate: float = 0.1) -> Dict[str, int]:
    """Runs the batch segmentation and reports progress (masks written / images) while it runs.

    Args:
      inputs: directories, globs, image files or TFRecord files.
      model: a SavedModel directory or a serving root (its newest version).
      output_dir: where masks/, shares.csv and skipped.csv go (local or gs://).
      pipeline_args: Beam arguments (runner and its options).
      batch_size: images per model call.
      progress_every_s: seconds between progress lines.
      out: where progress goes (None: the current sys.stdout, looked up at the call).
      log_dir: log a sample of the images here, as the server's --log_dir (None: no log).
      log_sample_rate: the share of images logged.

    Returns:
      {'images': found, 'segmented': masks written, 'skipped': skipped}.
    """
    out = sys.stdout if out is None else out
    model_dir = predict.resolve_model_dir(model) if '://' not in model else model
    image_files, record_files = list_inputs(inputs)
    total = len(image_files) + count_records(record_files)
    print(f'Model: {model_dir}\nImages: {total} ({len(image_files)} files, {len(record_files)} TFRecord files)',
          file=out, flush=True)
    for name in (SHARES_FILE, SKIPPED_FILE):
        if tf.io.gfile.exists(os.path.join(output_dir, name)):
            tf.io.gfile.remove(os.path.join(output_dir, name))
    if tf.io.gfile.isdir(os.path.join(output_dir, MASKS_DIR)):
        tf.io.gfile.rmtree(os.path.join(output_dir, MASKS_DIR))  # progress counts this run's masks only
    pipeline = beam.Pipeline(options=PipelineOptions(list(pipeline_args)))
    build_pipeline(pipeline, image_files, record_files, model_dir, output_dir, batch_size, log_dir, log_sample_rate)
    failure: List[BaseException] = []

    def run_pipeline():
        try:
            pipeline.run().wait_until_finish()
        except BaseException as e:  # noqa: BLE001  (re-raised in the caller's thread)
            failure.append(e)

    worker = threading.Thread(target=run_pipeline, daemon=True)
    start, shown = time.monotonic(), None
    worker.start()
    while worker.is_alive():
        worker.join(progress_every_s)
        done = _count_masks(output_dir)
        if done != shown:
            print(f'  {done}/{total} images segmented ({time.monotonic() - start:.0f} s)', file=out, flush=True)
            shown = done
    if failure:
        raise failure[0]
    skipped = _read_csv(os.path.join(output_dir, SKIPPED_FILE))
    segmented = len(_read_csv(os.path.join(output_dir, SHARES_FILE)))
    for name, reason in skipped:
        print(f'SKIPPED {name}: {reason}', file=out)
    print(f'Wrote {segmented} masks to {os.path.join(output_dir, MASKS_DIR)} and their class shares to '
          f'{os.path.join(output_dir, SHARES_FILE)}; skipped {len(skipped)} (listed in '
          f'{os.path.join(output_dir, SKIPPED_FILE)}).', file=out, flush=True)
    return {'images': total, 'segmented': segmented, 'skipped': len(skipped)}


def _read_csv(path: str) -> List[List[str]]:
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        return list(csv.reader(f))[1:]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--inputs', nargs='+', required=True, help='image directories, globs, files or TFRecords')
    parser.add_argument('--model', required=True, help='SavedModel dir or serving root with numbered versions')
    parser.add_argument('--output_dir', required=True, help='masks/, shares.csv and skipped.csv go here')
    parser.add_argument('--batch_size', type=int, default=8, help='images per model call (default 8)')
    parser.add_argument('--log_dir', help='log a sample of the images for the monitor, as the server does')
    parser.add_argument('--log_sample_rate', type=float, default=0.1, help='share of images logged (default: 0.1)')
    parser.add_argument('--direct_num_workers', type=int, default=1,
                        help='DirectRunner worker processes (1: in this process; 0: one per core)')
    dataflow = parser.add_argument_group('Dataflow (all four run the job there instead of locally)')
    for flag in ('dataflow_project', 'dataflow_region', 'temp_location', 'image'):
        dataflow.add_argument(f'--{flag}')
    args, extra = parser.parse_known_args(argv)
    cloud = [args.dataflow_project, args.dataflow_region, args.temp_location, args.image]
    if any(cloud) and not all(cloud):
        parser.error('Dataflow needs --dataflow_project, --dataflow_region, --temp_location and --image')
    pipeline_args = (beam_args.dataflow_beam_args(*cloud) if all(cloud)
                     else beam_args.direct_beam_args(args.direct_num_workers)) + [a for a in extra if a != '--']
    # Beam's local workers forward their warnings to this console, and RunInference warns on every bundle that
    # it cannot read memory usage here: progress and skips are what this console is for.
    logging.getLogger('apache_beam').setLevel(logging.ERROR)
    logging.getLogger().addFilter(lambda record: 'memory usage cannot be fetched' not in record.getMessage())
    if not 0 < args.log_sample_rate <= 1:
        parser.error(f'--log_sample_rate must be in (0, 1], got {args.log_sample_rate}')
    result = run(args.inputs, args.model, args.output_dir, pipeline_args, args.batch_size, log_dir=args.log_dir,
                 log_sample_rate=args.log_sample_rate)
    return 1 if result['skipped'] else 0


if __name__ == '__main__':
    sys.exit(main())
