"""TFX Trainer entry point: `run_fn` builds the U-Net, trains it on Transform's output and exports it.

Hyperparameters come from the Trainer's `custom_config` as plain data (`modules.hparams`); nothing here
imports the pipeline. Training history is written next to TensorBoard's logs in `model_run_dir`
(`history.json`) for the run report, and TensorBoard gets a few eval predictions as images each epoch.
Training may compute in mixed bfloat16 (where the hardware has it); the exported model always computes
in float32. Every epoch is backed up (Keras `BackupAndRestore`) under a directory that depends only on the
Trainer's inputs and settings, so rerunning the pipeline after a kill or a preemption resumes from the last
finished epoch; the backup is removed once the model is exported. Training runs under the `tf.distribute`
strategy the environment calls for (`modules.distribute`: several workers in TF_CONFIG, several GPUs, or one
device); `batch_size` is per replica, and only the chief writes the model, history and TensorBoard logs.
"""

import dataclasses
import functools
import hashlib
import io
import json
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from modules import augment, classes, data, distribute, hparams, metrics, model as model_lib, precision, signatures
from modules.hparams import TrainingConfig

HISTORY_FILE = hparams.HISTORY_FILE
TRAINED_SETTINGS_FILE = hparams.TRAINED_SETTINGS_FILE
BACKUP_DIR = 'backup'
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


def datasets(training: TrainingConfig, train_files: List[str], eval_files: List[str],
             tf_transform_output: tft.TFTransformOutput, global_batch: int) -> Tuple[tf.data.Dataset, tf.data.Dataset]:
    """(training batches, validation batches): the validation part of the training files when
    `validation_split` is set, else the eval split."""
    split = training.validation_split
    train_dataset = data.input_fn(
        train_files, tf_transform_output, global_batch, training=True, shuffle_buffer=training.shuffle_buffer,
        seed=training.seed, class_weights=training.class_weights, repeat=training.steps_per_epoch is not None,
        augmentation=augment.Augmentation.from_training(training), validation_split=split,
        subset='fit' if split else None)
    if split:
        validation = data.input_fn(train_files, tf_transform_output, global_batch, training=False,
                                   validation_split=split, subset='validation')
    else:
        validation = data.input_fn(eval_files, tf_transform_output, global_batch, training=False)
    return distribute.shard_by_data(train_dataset), distribute.shard_by_data(validation)


def backup_dir_for(model_run_dir: str, training: TrainingConfig, train_files: List[str], transform_output: str,
                   base_model: str = None) -> str:
    """Where training backs up each epoch: the same directory for every execution of the Trainer on the same
    inputs and settings, so a rerun after a kill resumes instead of starting over.

    Args:
      model_run_dir: this execution's ModelRun directory (`<pipeline_root>/Trainer/model_run/<id>`).
      training: training settings.
      train_files: the transformed training files.
      transform_output: the Transform graph directory.
      base_model: the warm-start model, if any.

    Returns:
      `<pipeline_root>/Trainer/backup/<digest of the inputs and settings>`.
    """
    key = json.dumps({'training': training.to_custom_config(), 'train_files': sorted(train_files),
                      'transform_output': transform_output, 'base_model': base_model}, sort_keys=True)
    trainer_root = os.path.dirname(os.path.dirname(os.path.normpath(model_run_dir)))
    return os.path.join(trainer_root, BACKUP_DIR, hashlib.sha256(key.encode()).hexdigest()[:16])


def transformed_image_size(tf_transform_output: tft.TFTransformOutput) -> int:
    """The side of Transform's images: the model is built for what Transform produces, nothing else."""
    return int(tf_transform_output.transformed_feature_spec()[data.IMAGE_XF].shape[0])


def effective_settings(training: TrainingConfig, measure: bool = True) -> Tuple[TrainingConfig, Dict[str, str]]:
    """The settings training runs with: what the configuration leaves open, decided here and nowhere else.

    The precision (`precision.choose`: configured, settled by the hardware, or measured), the form of the small
    decoder blocks' transposed convolutions (the GEMM form under mixed bfloat16, unless the sub-pixel form is asked
    for), the logits layer's form (split unless the sub-pixel form computes it its own way) and whether the
    encoder trains (random weights always do). Deciding again on the result changes nothing.

    Args:
      training: the configured settings.
      measure: whether the precision may be measured where the hardware leaves it open; false in a distributed
        run, where every replica must train the same model (float32 there).

    Returns:
      (the settings in effect, {setting: why} for each one decided here rather than configured).
    """
    speed = TrainingConfig(**{name: getattr(training, name) for name in _SPEED_SETTINGS})
    mixed, why = precision.choose(training.mixed_bfloat16, (lambda: _measured_bfloat16(speed)) if measure else None)
    decided = {} if training.mixed_bfloat16 is not None else {'mixed_bfloat16': why}
    gemm, split = training.gemm_upsampling, training.split_skip_logits
    if gemm is None:
        gemm = mixed and not training.subpixel_upsampling
        decided['gemm_upsampling'] = 'on under mixed bfloat16 unless subpixel_upsampling (faster there only)'
    if split is None:
        split = not training.subpixel_upsampling
        decided['split_skip_logits'] = 'on unless subpixel_upsampling computes the logits layer'
    if training.encoder_is_trained != training.train_encoder:
        decided['train_encoder'] = 'random encoder weights are always trained'
    return dataclasses.replace(training, mixed_bfloat16=mixed, gemm_upsampling=gemm, split_skip_logits=split,
                               train_encoder=training.encoder_is_trained), decided


def use_mixed_bfloat16(training: TrainingConfig, measure: bool = True) -> bool:
    """Whether `training` computes in mixed bfloat16 (`effective_settings`)."""
    return effective_settings(training, measure)[0].mixed_bfloat16


# What a step's speed depends on; the measurement is made once per process for each combination of them.
_SPEED_SETTINGS = ('encoder_weights', 'train_encoder', 'batch_size', 'subpixel_upsampling', 'gemm_upsampling',
                   'split_skip_logits', 'jit_compile')


@functools.lru_cache(maxsize=None)
def _measured_bfloat16(settings: TrainingConfig) -> bool:
    return precision.faster_in_bfloat16(
        lambda mixed: build_model(dataclasses.replace(settings, mixed_bfloat16=mixed)), settings.batch_size)


def _build_unet(training: TrainingConfig, num_classes: int = classes.OXFORD_IIIT_PET.num_classes,
                image_size: int = classes.DEFAULT_IMAGE_SIZE) -> keras.Model:
    """The U-Net of settings in effect (`effective_settings`)."""
    return model_lib.build_unet(image_size, num_classes, encoder_weights=training.encoder_weights,
                                train_encoder=training.train_encoder, dropout=training.dropout,
                                batchnorm_momentum=training.batchnorm_momentum, mixed_bfloat16=training.mixed_bfloat16,
                                subpixel=training.subpixel_upsampling, gemm_upsampling=training.gemm_upsampling,
                                split_skip_logits=training.split_skip_logits)


def float32_twin(model: keras.Model, training: TrainingConfig) -> keras.Model:
    """`model` itself if it computes in float32 with Keras' own layers, else a float32 copy with its weights.

    The exported model computes in float32 so it serves at full speed and precision on any machine,
    not only those with native bfloat16, and with the stock transposed convolutions: the rewrites are the
    same function, chosen for training speed on one kind of machine, and the serving machine may be another.
    """
    if model_lib.computes_in_float32(model) and not model_lib.has_rewritten_layers(model):
        return model
    stock = dataclasses.replace(training, mixed_bfloat16=False, subpixel_upsampling=False, gemm_upsampling=False,
                                split_skip_logits=False)
    twin = _build_unet(stock, num_classes=model.output_shape[-1], image_size=model.input_shape[1])
    model_lib.copy_weights(model, twin)
    return twin


def optimizer(learning_rate: float) -> keras.optimizers.Optimizer:
    """Adam, computed by TensorFlow's fused per-variable kernel (`ResourceApplyAdam`).

    Keras' current Adam builds the same update from ~10 Python-made ops per variable: tracing them for the
    ~260 variables of the trained U-Net was half of the first training step (21 s of 2-core time; 10 s with
    the fused kernel). The update is the same (`tests/modules/test_train.py`).
    """
    return keras.optimizers.legacy.Adam(learning_rate)


def build_model(training: TrainingConfig, base_model: str = None,
                description: classes.ClassDescription = classes.OXFORD_IIIT_PET,
                image_size: int = classes.DEFAULT_IMAGE_SIZE) -> keras.Model:
    """Builds and compiles the U-Net, continuing from `base_model`'s weights when given.

    Args:
      training: training settings.
      base_model: SavedModel directory of a previous model to warm-start from.
      description: the dataset's classes: the logits' channels, the metrics' names, ignored pixels in the loss.
      image_size: the input's height and width.

    Returns:
      Compiled model.
    """
    training, _ = effective_settings(training)
    logging.info('Training computes in %s', 'mixed bfloat16' if training.mixed_bfloat16 else 'float32')
    model = _build_unet(training, description.num_classes, image_size)
    if base_model:
        logging.info('Warm start from %s', base_model)
        model.load_weights(os.path.join(base_model, 'variables', 'variables')).expect_partial()
    model.compile(optimizer=optimizer(training.learning_rate),
                  loss=_loss(description), metrics=metrics.segmentation_metrics(description.names)[:2],
                  jit_compile=training.jit_compile)
    return without_autograph(model)


def _loss(description: classes.ClassDescription) -> keras.losses.Loss:
    # Only where the data has ignored pixels: Keras' ignore_class gathers the valid pixels, a cost the
    # datasets without any need not pay (ExampleGen lets no unknown mask value through).
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=classes.IGNORE_LABEL if description.ignore else None)


def without_autograph(model: keras.Model) -> keras.Model:
    """Keeps AutoGraph from converting the train/test/predict steps (and every Keras layer they call).

    Keras traces its step functions with AutoGraph, which transpiles the source of each Keras internal it
    reaches: on 2 CPU cores 60 of the ~80 s the first training step took, for code that has no tensor-dependent
    Python control flow (ours uses `tf.cond` where it needs one). Unconverted, the first step takes ~20 s, the
    first evaluation ~2 s instead of ~9 s, and training computes the same function.
    """
    for name in ('train_step', 'test_step', 'predict_step'):
        setattr(model, name, tf.autograph.experimental.do_not_convert(getattr(model, name)))
    return model


def train_and_export(train_files: List[str], eval_files: List[str], transform_output: str, serving_model_dir: str,
                     model_run_dir: str, training: TrainingConfig, base_model: str = None,
                     description: classes.ClassDescription = classes.OXFORD_IIIT_PET) -> Dict[str, list]:
    """Trains on transformed examples and exports the serving SavedModel.

    Args:
      train_files: transformed training files.
      eval_files: transformed evaluation files.
      transform_output: Transform graph directory.
      serving_model_dir: where to export the SavedModel.
      model_run_dir: TensorBoard logs and history.json.
      training: training settings.
      base_model: optional previous SavedModel to warm-start from.
      description: the dataset's classes; the export carries them (`classes.write_to_model`).

    Returns:
      The Keras history (metric name -> per-epoch values).
    """
    strategy = distribute.choose_strategy()  # first: collectives must be set up before other TensorFlow ops
    configured = training
    replicas = strategy.num_replicas_in_sync
    # Before the seed: a measured precision builds and steps throwaway models.
    training, decided = effective_settings(training, measure=replicas == 1 and distribute.training_tasks() == 1)
    for name, why in decided.items():
        logging.info('%s = %s: %s', name, getattr(training, name), why)
    keras.utils.set_random_seed(training.seed)
    chief = distribute.is_chief()
    logging.info('Distribution: %s; %d examples per step (%d per replica)', distribute.describe(strategy),
                 training.batch_size * replicas, training.batch_size)
    # From the configured settings: a rerun resumes even where a measured precision came out otherwise.
    backup_dir = backup_dir_for(model_run_dir, configured, train_files, transform_output, base_model)
    tf_transform_output = tft.TFTransformOutput(transform_output)
    image_size = transformed_image_size(tf_transform_output)
    with strategy.scope():
        model = build_model(training, base_model, description, image_size)
    train_dataset, eval_dataset = datasets(training, train_files, eval_files, tf_transform_output,
                                           training.batch_size * replicas)
    history = EpochHistory(os.path.join(backup_dir, HISTORY_FILE))
    if history.epochs_done:
        logging.getLogger(hparams.PROGRESS_LOGGER).info(
            'resuming from the backup of an interrupted run: %d of %d epochs were done', history.epochs_done,
            training.epochs)
    # Kept until the export below is done, so a kill during the export does not retrain either.
    # The schedule first, so that the epoch's learning rate ('lr') is in the logs the history keeps.
    callbacks = [keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
                 *training_callbacks(training, backup_dir), history]
    if chief:
        callbacks = [keras.callbacks.TensorBoard(log_dir=model_run_dir, update_freq='epoch'), *callbacks,
                     EpochProgress(training.epochs)]
    if distribute.training_tasks() == 1:
        # A model call outside fit reads the BatchNorm statistics, which across workers is a collective step the
        # other workers would not join; so the pictures are for single-worker runs.
        sample_images, sample_masks = next(iter(eval_dataset.take(1)))[:2]
        callbacks.insert(1, PredictionImages(os.path.join(model_run_dir, 'images'), sample_images[:3], sample_masks[:3],
                                                     description.colors))
    model.fit(train_dataset, epochs=training.epochs, steps_per_epoch=training.steps_per_epoch,
              validation_data=eval_dataset, validation_steps=training.validation_steps, callbacks=callbacks, verbose=0)
    export_model = float32_twin(model, training)
    if not chief:
        # Saving may read variables through collectives, so every worker saves; only the chief's copy is kept.
        scratch = tempfile.mkdtemp(prefix=f'petseg-{distribute.task_name()}-')
        signatures.export_serving_model(export_model, tf_transform_output, scratch, training.test_time_flip)
        shutil.rmtree(scratch, ignore_errors=True)
        return history.values
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, HISTORY_FILE), 'w') as f:
        json.dump(history.values, f, indent=1)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, TRAINED_SETTINGS_FILE), 'w') as f:
        json.dump({**training.to_custom_config(), hparams.DECIDED_KEY: decided}, f, indent=1)
    signatures.export_serving_model(export_model, tf_transform_output, serving_model_dir, training.test_time_flip)
    classes.write_to_model(serving_model_dir, description, image_size)
    tf.io.gfile.rmtree(backup_dir)
    return history.values


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer entry point (GenericExecutor).

    Args:
      fn_args: train/eval files, Transform output, output dirs, base model and custom_config.
    """
    training = hparams.from_custom_config(fn_args.custom_config)
    if fn_args.hyperparameters:
        # The Tuner's best values (KerasTuner's HyperParameters config) replace the configured ones.
        training = hparams.with_hyperparameters(training, fn_args.hyperparameters.get('values'))
    logging.info('Training with %s', training)
    train_and_export(fn_args.train_files, fn_args.eval_files, fn_args.transform_graph_path, fn_args.serving_model_dir,
                     fn_args.model_run_dir, training, fn_args.base_model if training.warm_start else None,
                     classes.from_custom_config(fn_args.custom_config)[0])
