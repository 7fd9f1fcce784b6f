"""TFX Trainer entry point: `run_fn` builds the U-Net, trains it on Transform's output and exports it.

Hyperparameters come from the Trainer's `custom_config` as plain data (`modules.hparams`); nothing here
imports the pipeline. Training history is written next to TensorBoard's logs in `model_run_dir`
(`history.json`) for the run report, and TensorBoard gets a few eval predictions as images each epoch.
Training may compute in mixed bfloat16 (where the hardware has it); the exported model always computes
in float32, with its BatchNorm statistics recomputed at the final weights (`recompute_batchnorm`). Every epoch
is backed up (Keras `BackupAndRestore`) under a directory that depends only on the Trainer's inputs and
settings, so rerunning the pipeline after a kill or a preemption resumes from the last finished epoch; the
backup is removed once the model is exported. Training runs under the `tf.distribute` strategy the environment
calls for (`modules.distribute`: several workers in TF_CONFIG, several GPUs, or one device); `batch_size` is
per replica, and only the chief writes the model, history and TensorBoard logs.
"""

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from modules import (classes, data, distribute, hparams, metrics, model as model_lib, precise_batchnorm, precision,
                     signatures)
from modules.callbacks import EpochHistory, EpochProgress, PredictionImages, training_callbacks
from modules.hparams import TrainingConfig

HISTORY_FILE = hparams.HISTORY_FILE
TRAINED_SETTINGS_FILE = hparams.TRAINED_SETTINGS_FILE
BATCHNORM_FILE = hparams.BATCHNORM_FILE
BACKUP_DIR = 'backup'


def cache_in_memory(training: TrainingConfig, files: List[str], tf_transform_output: tft.TFTransformOutput) -> bool:
    """Whether the decoded tensors of `files` fit `speed.cache_budget_mb`; says which way was chosen."""
    count = data.count_examples(files)
    needed_mb = count * data.example_bytes(tf_transform_output) / 2 ** 20
    fits = needed_mb <= training.speed.cache_budget_mb
    logging.getLogger(hparams.PROGRESS_LOGGER).info(
        'input: %d examples, %.0f MiB decoded, %s', count, needed_mb,
        f'cached in memory (budget {training.speed.cache_budget_mb} MiB)' if fits else
        f'over the cache budget of {training.speed.cache_budget_mb} MiB: read from Transform\'s files every epoch')
    return fits


def datasets(training: TrainingConfig, train_files: List[str], eval_files: List[str],
             tf_transform_output: tft.TFTransformOutput, global_batch: int) -> Tuple[tf.data.Dataset, tf.data.Dataset]:
    """(training batches, validation batches): the validation part of the training files when
    `validation_split` is set, else the eval split; cached in memory only within `speed.cache_budget_mb`."""
    split = training.validation_split
    cache = cache_in_memory(training, list(train_files) + ([] if split else list(eval_files)), tf_transform_output)
    train_dataset = data.input_fn(
        train_files, tf_transform_output, global_batch, training=True, shuffle_buffer=training.shuffle_buffer,
        seed=training.seed, class_weights=training.class_weights, repeat=training.steps_per_epoch is not None,
        augmentation=training.augmentation, validation_split=split,
        subset='fit' if split else None, cache=cache)
    if split:
        validation = data.input_fn(train_files, tf_transform_output, global_batch, training=False,
                                   validation_split=split, subset='validation', cache=cache)
    else:
        validation = data.input_fn(eval_files, tf_transform_output, global_batch, training=False, cache=cache)
    return distribute.shard_by_data(train_dataset), distribute.shard_by_data(validation)


def validation_scores(model: keras.Model, validation: tf.data.Dataset, steps: Optional[int],
                      description: classes.ClassDescription) -> Dict[str, float]:
    """`val_pixel_accuracy` and `val_mean_iou` of `model` in inference on `validation` (its first `steps` batches
    when given), as `fit` reports them."""
    scores = metrics.segmentation_metrics(description.names)[:2]

    @tf.function(autograph=False)
    def update(images, masks):
        logits = model(images, training=False)
        for score in scores:
            score.update_state(masks, logits)

    for batch in validation.take(steps) if steps else validation:
        update(batch[0], batch[1])
    return {f'val_{score.name}': float(score.result()) for score in scores}


def recompute_batchnorm(model: keras.Model, training: TrainingConfig, train_files: List[str],
                        tf_transform_output: tft.TFTransformOutput, validation: tf.data.Dataset,
                        description: classes.ClassDescription) -> Dict[str, object]:
    """Recomputes the trained BatchNorms' statistics of `model` from the training split at its final weights
    (`modules.precise_batchnorm`) and scores the validation data before and after; says so on the console.

    Args:
      model: the trained model; changed in place.
      training: the settings in effect (`precise_batchnorm_images`, the batch size, the validation part).
      train_files: the transformed training files.
      tf_transform_output: Transform's output.
      validation: the validation batches `fit` scored each epoch.
      description: the dataset's classes.

    Returns:
      {'images', 'layers', 'before', 'after'}: how many images and layers, and the validation scores before and
      after; {'images': 0, 'why': ...} when nothing was recomputed.
    """
    layers = len(precise_batchnorm.trained_batchnorms(model))
    if not training.precise_batchnorm_images or not layers:
        return {'images': 0, 'why': 'training.precise_batchnorm_images is 0' if layers else 'no trained BatchNorm'}
    split = training.validation_split
    # Augmented as in training: the weights learned against the statistics of augmented batches (on the real
    # photos the `real` preset's model lost 1.3 points of pixel accuracy with unaugmented statistics, 0.0-0.2
    # with augmented ones).
    batches = data.input_fn(train_files, tf_transform_output, training.batch_size, training=True,
                            shuffle_buffer=training.shuffle_buffer, seed=training.seed, cache=False,
                            augmentation=training.augmentation, validation_split=split,
                            subset='fit' if split else None)
    before = validation_scores(model, validation, training.validation_steps, description)
    images = precise_batchnorm.recompute(model, batches, training.precise_batchnorm_images)
    after = validation_scores(model, validation, training.validation_steps, description)
    logging.getLogger(hparams.PROGRESS_LOGGER).info(
        'BatchNorm statistics recomputed from %d training images: %s', images,
        ', '.join(f'{name} {before[name]:.4f} -> {after[name]:.4f}' for name in after))
    return {'images': images, 'layers': layers, 'before': before, 'after': after}


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
    speed = training.speed
    # What a step's speed depends on: the measurement is made once per process for each combination.
    measured = TrainingConfig(encoder_weights=training.encoder_weights, train_encoder=training.train_encoder,
                              batch_size=training.batch_size, speed=speed)
    mixed, why = precision.choose(speed.mixed_bfloat16, (lambda: _measured_bfloat16(measured)) if measure else None)
    decided = {} if speed.mixed_bfloat16 is not None else {'speed.mixed_bfloat16': why}
    gemm, split = speed.gemm_upsampling, speed.split_skip_logits
    if gemm is None:
        gemm = mixed and not speed.subpixel_upsampling
        decided['speed.gemm_upsampling'] = 'on under mixed bfloat16 unless subpixel_upsampling (faster there only)'
    if split is None:
        split = not speed.subpixel_upsampling
        decided['speed.split_skip_logits'] = 'on unless subpixel_upsampling computes the logits layer'
    if training.encoder_is_trained != training.train_encoder:
        decided['train_encoder'] = 'random encoder weights are always trained'
    effective = dataclasses.replace(training.with_speed(mixed_bfloat16=mixed, gemm_upsampling=gemm,
                                                        split_skip_logits=split),
                                    train_encoder=training.encoder_is_trained)
    return effective, decided


def use_mixed_bfloat16(training: TrainingConfig, measure: bool = True) -> bool:
    """Whether `training` computes in mixed bfloat16 (`effective_settings`)."""
    return effective_settings(training, measure)[0].speed.mixed_bfloat16


@functools.lru_cache(maxsize=None)
def _measured_bfloat16(settings: TrainingConfig) -> bool:
    return precision.faster_in_bfloat16(
        lambda mixed: build_model(settings.with_speed(mixed_bfloat16=mixed)), settings.batch_size)


def _build_unet(training: TrainingConfig, num_classes: int = classes.OXFORD_IIIT_PET.num_classes,
                image_size: int = classes.DEFAULT_IMAGE_SIZE) -> keras.Model:
    """The U-Net of settings in effect (`effective_settings`)."""
    return model_lib.build_unet(image_size, num_classes, encoder_weights=training.encoder_weights,
                                train_encoder=training.train_encoder, dropout=training.dropout,
                                batchnorm_momentum=training.batchnorm_momentum,
                                mixed_bfloat16=training.speed.mixed_bfloat16, subpixel=training.speed.subpixel_upsampling,
                                gemm_upsampling=training.speed.gemm_upsampling,
                                split_skip_logits=training.speed.split_skip_logits)


def float32_twin(model: keras.Model, training: TrainingConfig) -> keras.Model:
    """`model` itself if it computes in float32 with Keras' own layers, else a float32 copy with its weights.

    The exported model computes in float32 so it serves at full speed and precision on any machine,
    not only those with native bfloat16, and with the stock transposed convolutions: the rewrites are the
    same function, chosen for training speed on one kind of machine, and the serving machine may be another.
    """
    if model_lib.computes_in_float32(model) and not model_lib.has_rewritten_layers(model):
        return model
    stock = training.with_speed(mixed_bfloat16=False, subpixel_upsampling=False, gemm_upsampling=False,
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
    logging.info('Training computes in %s', 'mixed bfloat16' if training.speed.mixed_bfloat16 else 'float32')
    model = _build_unet(training, description.num_classes, image_size)
    if base_model:
        logging.info('Warm start from %s', base_model)
        model.load_weights(os.path.join(base_model, 'variables', 'variables')).expect_partial()
    model.compile(optimizer=optimizer(training.learning_rate),
                  loss=_loss(description), metrics=metrics.segmentation_metrics(description.names)[:2],
                  jit_compile=training.speed.jit_compile)
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


def _fit_callbacks(training: TrainingConfig, backup_dir: str, model_run_dir: str, history: EpochHistory,
                   eval_dataset: tf.data.Dataset, colors) -> List[keras.callbacks.Callback]:
    """The callbacks of `fit`: the backup first (kept until the export is done, so a kill during the export does not
    retrain either), then the schedule (so that the epoch's learning rate is in the logs the history keeps), the
    history; on the chief TensorBoard, its pictures and the progress lines."""
    callbacks = [keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
                 *training_callbacks(training, backup_dir), history]
    if not distribute.is_chief():
        return callbacks
    callbacks = [keras.callbacks.TensorBoard(log_dir=model_run_dir, update_freq='epoch'), *callbacks,
                 EpochProgress(training.epochs)]
    if distribute.training_tasks() == 1:
        # A model call outside fit reads the BatchNorm statistics, which across workers is a collective step the
        # other workers would not join; so the pictures are for single-worker runs.
        sample_images, sample_masks = next(iter(eval_dataset.take(1)))[:2]
        callbacks.insert(1, PredictionImages(os.path.join(model_run_dir, 'images'), sample_images[:3],
                                             sample_masks[:3], colors))
    return callbacks


def _export(model: keras.Model, tf_transform_output: tft.TFTransformOutput, serving_model_dir: str,
            model_run_dir: str, training: TrainingConfig, decided: Dict[str, str], history: Dict[str, list],
            description: classes.ClassDescription, batchnorm: Dict[str, object]) -> None:
    """Writes the SavedModel with its classes, history.json, training.json and batchnorm.json (what
    `recompute_batchnorm` did); on a worker other than the chief, a scratch export only (saving may read variables
    through collectives, so every worker saves)."""
    if not distribute.is_chief():
        scratch = tempfile.mkdtemp(prefix=f'petseg-{distribute.task_name()}-')
        signatures.export_serving_model(model, tf_transform_output, scratch, training.test_time_flip)
        shutil.rmtree(scratch, ignore_errors=True)
        return
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, HISTORY_FILE), 'w') as f:
        json.dump(history, f, indent=1)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, TRAINED_SETTINGS_FILE), 'w') as f:
        json.dump({**training.to_custom_config(), hparams.DECIDED_KEY: decided}, f, indent=1)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, BATCHNORM_FILE), 'w') as f:
        json.dump(batchnorm, f, indent=1)
    signatures.export_serving_model(model, tf_transform_output, serving_model_dir, training.test_time_flip)
    classes.write_to_model(serving_model_dir, description, model.input_shape[1])


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
    in_effect = hparams.flatten(training.to_custom_config())
    for name, why in decided.items():
        logging.info('%s = %s: %s', name, in_effect[name], why)
    keras.utils.set_random_seed(training.seed)
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
    callbacks = _fit_callbacks(training, backup_dir, model_run_dir, history, eval_dataset, description.colors)
    model.fit(train_dataset, epochs=training.epochs, steps_per_epoch=training.steps_per_epoch,
              validation_data=eval_dataset, validation_steps=training.validation_steps, callbacks=callbacks, verbose=0)
    served = float32_twin(model, training)
    if replicas == 1 and distribute.training_tasks() == 1:
        batchnorm = recompute_batchnorm(served, training, train_files, tf_transform_output, eval_dataset, description)
    else:
        # Outside `fit` a training-mode call would have to gather every replica's batch statistics itself.
        batchnorm = {'images': 0, 'why': 'distributed training keeps the moving averages'}
    _export(served, tf_transform_output, serving_model_dir, model_run_dir, training, decided,
            history.values, description, batchnorm)
    if distribute.is_chief():
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
