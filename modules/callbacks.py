"""The Trainer's Keras callbacks and its learning-rate schedule: progress lines, TensorBoard pictures, a history
that survives interruptions, and early stopping that resumes with its best weights.

All of them resume exactly after a kill: the schedule depends on the epoch only, and the history and early
stopping keep their state in the Trainer's backup directory.
"""

import io
import json
import logging
import math
import os
import time
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from modules import distribute, hparams
from modules.hparams import TrainingConfig

_SHOWN_METRICS = ('loss', 'pixel_accuracy', 'mean_iou', 'val_loss', 'val_pixel_accuracy', 'val_mean_iou')


class EpochProgress(keras.callbacks.Callback):
    """Logs one line per epoch: its number, seconds and the headline metrics."""

    def __init__(self, epochs: int):
        super().__init__()
        self._epochs = epochs
        self._logger = logging.getLogger(hparams.PROGRESS_LOGGER)

    def on_epoch_begin(self, epoch: int, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch: int, logs=None):
        shown = ', '.join(f'{name} {logs[name]:.4f}' for name in _SHOWN_METRICS if name in (logs or {}))
        self._logger.info('epoch %d/%d (%.0f s): %s', epoch + 1, self._epochs, time.monotonic() - self._start, shown)


class PredictionImages(keras.callbacks.Callback):
    """Writes Input | True Mask | Predicted Mask strips of a few eval images to TensorBoard each epoch."""

    def __init__(self, log_dir: str, images: tf.Tensor, masks: tf.Tensor, colors):
        super().__init__()
        self._writer = tf.summary.create_file_writer(log_dir)
        self._images, self._masks = images, masks
        # Ignored pixels of the true mask are drawn black (one colour more than the classes).
        self._colors = tf.constant(list(colors) + [(0, 0, 0)], tf.float32) / 255.0

    def on_epoch_end(self, epoch: int, logs=None):
        predicted = tf.argmax(self.model(self._images, training=False), axis=-1)
        true = tf.gather(self._colors, tf.minimum(tf.cast(self._masks[..., 0], tf.int32), len(self._colors) - 1))
        strips = tf.concat([self._images, true, tf.gather(self._colors, predicted)], axis=2)
        with self._writer.as_default():
            tf.summary.image('eval_predictions', strips, step=epoch, max_outputs=len(strips))


class EpochHistory(keras.callbacks.Callback):
    """The per-epoch metrics of every epoch of a training, across interruptions: kept in the backup directory."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path
        self._writes = distribute.is_chief()  # decided once: TF_CONFIG does not change during training
        self.values: Dict[str, List[float]] = {}
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                self.values = json.load(f)

    @property
    def epochs_done(self) -> int:
        return len(next(iter(self.values.values()), []))

    def on_epoch_end(self, epoch: int, logs=None):
        for name, value in (logs or {}).items():
            self.values.setdefault(name, [])[epoch:] = [float(value)]
        if not self._writes:
            return
        tf.io.gfile.makedirs(os.path.dirname(self._path))
        with tf.io.gfile.GFile(self._path, 'w') as f:
            json.dump(self.values, f)


class BestWeights(keras.callbacks.EarlyStopping):
    """Early stopping on validation mean IoU that ends with the best epoch's weights, also after a resume.

    With `state_dir` (the Trainer's backup directory) the best score, its epoch and its weights are saved
    there whenever they change, so a run resumed from `BackupAndRestore` keeps a best epoch from before the
    kill and counts the epochs without improvement from it, as the uninterrupted run would. They are saved
    after the epoch's backup, so a kill between the two loses at most that epoch's claim to be the best.
    """

    STATE_FILE = 'best_weights.npz'

    def __init__(self, patience: int, state_dir: Optional[str] = None):
        super().__init__(monitor='val_mean_iou', mode='max', patience=patience, restore_best_weights=True)
        self._state_path = os.path.join(state_dir, self.STATE_FILE) if state_dir else None
        self._writes = distribute.is_chief()  # decided once: TF_CONFIG does not change during training
        self._resumed = False

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if not self._state_path or not tf.io.gfile.exists(self._state_path):
            return
        with tf.io.gfile.GFile(self._state_path, 'rb') as f:
            state = np.load(io.BytesIO(f.read()))
            self.best, self.best_epoch = float(state['best']), int(state['best_epoch'])
            self.best_weights = [state[f'w{i}'] for i in range(int(state['num_weights']))]
        self._resumed = True
        logging.getLogger(hparams.PROGRESS_LOGGER).info(
            'early stopping resumes: best val_mean_iou %.4f at epoch %d', self.best, self.best_epoch + 1)

    def on_epoch_begin(self, epoch: int, logs=None):
        if self._resumed:
            # Keras resets the count at every improvement and adds one per other epoch, so it is the number of
            # epochs finished since the best one.
            self.wait, self._resumed = max(0, epoch - 1 - self.best_epoch), False

    def on_epoch_end(self, epoch: int, logs=None):
        kept = self.best_weights
        super().on_epoch_end(epoch, logs)
        if self._state_path and self._writes and self.best_weights is not kept:
            self._save_state()

    def _save_state(self) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, best=self.best, best_epoch=self.best_epoch, num_weights=len(self.best_weights),
                 **{f'w{i}': w for i, w in enumerate(self.best_weights)})
        # Written whole, then renamed: a kill mid-write leaves the previous state, never a torn one.
        partial = self._state_path + '.partial'
        tf.io.gfile.makedirs(os.path.dirname(self._state_path))
        with tf.io.gfile.GFile(partial, 'wb') as f:
            f.write(buffer.getvalue())
        tf.io.gfile.rename(partial, self._state_path, overwrite=True)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)  # sets the best epoch's weights, stopped early or not (tf_keras 2.16)
        progress = logging.getLogger(hparams.PROGRESS_LOGGER)
        if self.stopped_epoch:
            progress.info('stopped early after epoch %d; keeping the weights of epoch %d (best val_mean_iou %.4f)',
                          self.stopped_epoch + 1, self.best_epoch + 1, self.best)
        elif self.best_weights is not None:
            progress.info('keeping the weights of epoch %d (best val_mean_iou %.4f)', self.best_epoch + 1, self.best)


def learning_rate_at(training: TrainingConfig, epoch: int) -> float:
    """The learning rate of `epoch` (0-based): linear warm-up, then constant or cosine decay."""
    if epoch < training.warmup_epochs:
        return training.learning_rate * (epoch + 1) / training.warmup_epochs
    if training.lr_schedule == 'constant':
        return training.learning_rate
    decay_epochs = max(1, training.epochs - training.warmup_epochs)
    return training.learning_rate * 0.5 * (1 + math.cos(math.pi * (epoch - training.warmup_epochs) / decay_epochs))


def training_callbacks(training: TrainingConfig, state_dir: Optional[str] = None) -> List[keras.callbacks.Callback]:
    """The schedule and early stopping `training` asks for; both resume exactly after a kill (the schedule
    depends on the epoch only; early stopping keeps its state in `state_dir`, the backup directory)."""
    callbacks = []
    if training.lr_schedule != 'constant' or training.warmup_epochs:
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: learning_rate_at(training, epoch)))
    if training.early_stopping_patience is not None:
        callbacks.append(BestWeights(training.early_stopping_patience, state_dir))
    return callbacks
