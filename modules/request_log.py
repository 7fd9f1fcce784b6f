"""A sample of what a served model receives, written as tf.Examples the monitor compares with the training data.

For a sampled request image: the same per-image features ExampleGen computes (`image_height`, `image_width`,
`image_channels`), the predicted class fractions in place of the mask's (`<class>_fraction`), and
`model_version`, `logged_at_ms` (UNIX milliseconds) and `latency_ms`; the image bytes only with `log_images` (so they
can be labelled and added to the data). `RequestLog.offer` is what the request path calls: it draws the
sample and hands the work to a queue, never blocking and never raising; one writer thread builds the
examples and appends them to `requests-<UTC time>.tfrecord` files, starting a new file past `max_file_bytes`
or `max_file_seconds`, and deleting the oldest files beyond `max_total_bytes`. A full disk or any write error
is counted and logged, and the prediction that was offered is answered as if logging were off.
"""

import io
import logging
import os
import queue
import random
import threading
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from modules import classes, keys

FILE_PREFIX = 'requests-'
FILE_SUFFIX = '.tfrecord'
MODEL_VERSION_KEY = 'model_version'
# Milliseconds since the epoch, an int64: a float32 (tf.train.FloatList) holds UNIX seconds to ~2 minutes only.
LOGGED_AT_KEY = 'logged_at_ms'
LATENCY_MS_KEY = 'latency_ms'


def image_features(data: bytes) -> Dict[str, int]:
    """Height, width and channels of an encoded image, read from its header as ExampleGen reads them."""
    with Image.open(io.BytesIO(data)) as picture:
        width, height = picture.size
        return {keys.IMAGE_HEIGHT_KEY: height, keys.IMAGE_WIDTH_KEY: width,
                keys.IMAGE_CHANNELS_KEY: len(picture.getbands())}


def predicted_fractions(mask: np.ndarray, description: classes.ClassDescription) -> Dict[str, float]:
    """Each class's share of a predicted mask's pixels (padding and other values outside 0..K-1 not counted)."""
    mask = np.asarray(mask).ravel()
    counted = mask[mask < description.num_classes]
    total = max(1, counted.size)
    counts = np.bincount(counted.astype(np.int64), minlength=description.num_classes)
    return {key: float(counts[i] / total) for i, key in enumerate(description.fraction_keys)}


def make_example(image: bytes, mask: np.ndarray, description: classes.ClassDescription, version: int,
                 latency_ms: float, logged_at: float, with_image: bool) -> tf.train.Example:
    """The logged record of one request image."""
    floats = {**predicted_fractions(mask, description), LATENCY_MS_KEY: latency_ms}
    ints = {**image_features(image), MODEL_VERSION_KEY: version, LOGGED_AT_KEY: int(logged_at * 1000)}
    feature = {name: tf.train.Feature(float_list=tf.train.FloatList(value=[value])) for name, value in floats.items()}
    feature.update({name: tf.train.Feature(int64_list=tf.train.Int64List(value=[value])) for name, value in ints.items()})
    if with_image:
        feature[keys.IMAGE_KEY] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def log_files(log_dir: str) -> List[str]:
    """The log's files, oldest first (their names sort by the time they were started)."""
    if not tf.io.gfile.isdir(log_dir):
        return []
    return sorted(os.path.join(log_dir, name) for name in tf.io.gfile.listdir(log_dir)
                  if name.startswith(FILE_PREFIX) and name.endswith(FILE_SUFFIX))


class RequestLog:
    """Samples requests and writes them off the request path; bounded in memory, file size and total size.

    Args:
      log_dir: where the files go (created).
      sample_rate: the share of request images logged, in (0, 1].
      log_images: keep each logged image's bytes.
      max_file_bytes: a file is closed and a new one started past this size...
      max_file_seconds: ...or after this long.
      max_total_bytes: the oldest files are deleted while the log is larger.
      queue_size: offers waiting for the writer; more are dropped (and counted), never waited for.
      seed: the sampling's seed (tests).
    """

    def __init__(self, log_dir: str, sample_rate: float = 0.1, log_images: bool = False,
                 max_file_bytes: int = 16 << 20, max_file_seconds: float = 3600.0, max_total_bytes: int = 1 << 30,
                 queue_size: int = 256, seed: Optional[int] = None):
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f'sample_rate must be in (0, 1], got {sample_rate}')
        self.log_dir, self.sample_rate, self.log_images = log_dir, sample_rate, log_images
        self._max_file_bytes, self._max_file_seconds, self._max_total_bytes = max_file_bytes, max_file_seconds, \
            max_total_bytes
        self._random = random.Random(seed)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._writer: Optional[tf.io.TFRecordWriter] = None
        self._file: Optional[str] = None
        self._file_started = 0.0
        self._file_bytes = 0
        self.counts = {'offered': 0, 'logged': 0, 'dropped': 0, 'failed': 0}
        self._thread = threading.Thread(target=self._run, name='request-log', daemon=True)
        self._thread.start()

    def offer(self, images: Sequence[bytes], masks: Sequence[np.ndarray], description: classes.ClassDescription,
              version: int, latency_ms: float) -> None:
        """Called once per answered request; samples its images and queues them. Never blocks, never raises."""
        try:
            for image, mask in zip(images, masks):
                self.counts['offered'] += 1
                if self._random.random() >= self.sample_rate:
                    continue
                try:
                    self._queue.put_nowait((image, np.asarray(mask), description, version, latency_ms, time.time()))
                except queue.Full:
                    self.counts['dropped'] += 1
        except Exception:  # logging must never fail a prediction
            self.counts['failed'] += 1

    def flush(self) -> None:
        """Waits until what was offered is written and flushed to the file (tests, shutdown)."""
        self._queue.put(None)
        self._queue.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    if self._writer is not None:
                        self._writer.flush()
                    continue
                self._write(item)
            except Exception as e:  # a full or failing disk: count it, close the file, keep serving
                self.counts['failed'] += 1
                if self.counts['failed'] in (1, 10, 100, 1000):
                    logging.error('Request log: cannot write to %s (%s); %d records lost so far', self.log_dir, e,
                                  self.counts['failed'])
                self._close()
            finally:
                self._queue.task_done()

    def _write(self, item) -> None:
        image, mask, description, version, latency_ms, logged_at = item
        example = make_example(image, mask, description, version, latency_ms, logged_at, self.log_images)
        if self._writer is None or self._due_for_rotation(logged_at):
            self._close()
            self._open(logged_at)
        record = example.SerializeToString()
        self._writer.write(record)
        self._writer.flush()
        self._file_bytes += len(record) + 16  # TFRecord framing: length, two CRCs
        self.counts['logged'] += 1

    def _due_for_rotation(self, now: float) -> bool:
        return now - self._file_started >= self._max_file_seconds or self._file_bytes >= self._max_file_bytes

    def _open(self, now: float) -> None:
        tf.io.gfile.makedirs(self.log_dir)
        stamp = time.strftime('%Y%m%dT%H%M%S', time.gmtime(now)) + f'{now % 1:.6f}'[1:]
        self._file = os.path.join(self.log_dir, f'{FILE_PREFIX}{stamp}{FILE_SUFFIX}')
        self._writer = tf.io.TFRecordWriter(self._file)
        self._file_started, self._file_bytes = now, 0
        self._bound_total()

    def _close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            finally:
                self._writer = None

    def _bound_total(self) -> None:
        files = log_files(self.log_dir)
        sizes = {path: tf.io.gfile.stat(path).length for path in files}
        total = sum(sizes.values())
        for path in files:
            if total <= self._max_total_bytes or path == self._file:
                break
            tf.io.gfile.remove(path)
            total -= sizes[path]
