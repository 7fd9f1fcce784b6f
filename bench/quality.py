"""Segmentation quality from scratch: this project next to the tutorial's code, and what each setting adds.

Both sections read a finished pipeline run (`bench/run.py` starts one): its Transform output and eval split.
- `tutorial_side`: the tutorial's own code (`bench/tutorial_baseline.py`: its loader, flip and model), its
  encoder made trainable (a frozen random encoder learns nothing) with random weights like ours, the same
  images, batch size and epochs; scored on the same eval images as the project's model.
- `ablation`: the Trainer's own code (`modules.train.train_and_export`, export included) run once per
  variant of the training settings, each scored on the eval split: the settings as configured, then one
  change at a time (each augmentation off, constant learning rate, no early stopping, class weights
  toggled, and the `default` preset's training settings).
Every figure is pixel accuracy, mean IoU and per-class IoU on the eval split, which no side trains or
stops on.
"""

import dataclasses
import logging
import os
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bench import measure, tutorial_baseline
from modules import classes, hparams, metrics, signatures, train
from modules.hparams import TrainingConfig


class _EpochLog(logging.Handler):
    """Collects the Trainer's one-line-per-epoch progress records, for the results."""

    def __init__(self):
        super().__init__()
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def score_saved_model(model_dir: str, images: np.ndarray, masks: np.ndarray, batch_size: int = 32,
                      mirror: bool = False) -> Dict[str, float]:
    """Scores an exported model's `segment` function (transformed images -> logits) on decoded eval images;
    `mirror` averages its logits with those of the mirrored images, as `test_time_flip` exports do."""
    loaded = tf.saved_model.load(model_dir)  # kept referenced: its functions read its variables
    segment = signatures.segment_function(loaded)

    def logits(batch):
        return signatures.flip_averaged(segment, tf.constant(batch)) if mirror else segment(tf.constant(batch))
    predicted = np.concatenate([np.argmax(logits(images[i:i + batch_size]), -1)
                                for i in range(0, len(images), batch_size)])
    return metrics.numpy_scores(masks, predicted, classes.OXFORD_IIIT_PET.names)


def tutorial_side(source_dir: Optional[str], data_dir: Optional[str], work_dir: str, epochs: int, batch_size: int,
                  images: np.ndarray, masks: np.ndarray, seed: int = 0) -> Dict:
    """Trains the tutorial's code from random weights with its encoder trainable; returns its scores and time."""
    keras.utils.set_random_seed(seed)
    dataset, info = tutorial_baseline.load_dataset(source_dir, data_dir, os.path.join(work_dir, 'tfds'))
    train_batches, _ = tutorial_baseline.input_pipelines(dataset, batch_size)
    model = tutorial_baseline.build_and_compile(None, train_encoder=True)
    steps = max(1, info.splits['train'].num_examples // batch_size)
    start = time.perf_counter()
    model.fit(train_batches, epochs=epochs, steps_per_epoch=steps, verbose=0)
    return {'seconds': time.perf_counter() - start, 'epochs': epochs, 'quality': measure.score(model, images, masks)}


def variants(training: TrainingConfig, default_training: TrainingConfig) -> List[Tuple[str, TrainingConfig]]:
    """The ablation's settings: as configured, then one change each (skipping changes that change nothing)."""
    no_geometry = training.with_augmentation(scale=0.0, rotation=0.0, shift=0.0)
    changed = [
        ('no scale/rotation/shift augmentation', no_geometry),
        ('no colour jitter', training.with_augmentation(color=0.0)),
        ('no augmentation at all (not even the flip)', no_geometry.with_augmentation(flip=False, color=0.0)),
        ('constant learning rate, no warm-up', dataclasses.replace(training, lr_schedule='constant', warmup_epochs=0)),
        ('no early stopping (all training images, last epoch)',
         dataclasses.replace(training, early_stopping_patience=None, validation_split=0.0)),
        ('early stopping on 10% held out (patience 10)',
         dataclasses.replace(training, validation_split=0.1, early_stopping_patience=10)
         if training.early_stopping_patience is None else training),
        ('class weights ' + ('off' if training.class_weights else 'on (2, 1, 2)'),
         dataclasses.replace(training, class_weights=None if training.class_weights else (2.0, 1.0, 2.0))),
        ('the default preset\'s training settings, same epochs', dataclasses.replace(default_training, epochs=training.epochs)),
    ]
    configured = [('as configured', training)]
    configured += [(name, varied) for name, varied in changed if varied != training]
    return configured


def ablation(training: TrainingConfig, default_training: TrainingConfig, train_files: List[str],
             eval_files: List[str], transform_output: str, work_dir: str, images: np.ndarray, masks: np.ndarray,
             only: int = 0) -> List[Dict]:
    """Trains and scores each variant with the Trainer's code; `only` > 0 keeps the first `only` variants.

    Each model is exported without the test-time flip and scored both ways (`quality_by_test_time_flip`), so
    one training gives the flip's effect too; `quality` is the way the variant's settings ask for."""
    rows = []
    chosen = variants(training, default_training)
    for index, (name, settings) in enumerate(chosen[:only] if only else chosen):
        print(f'  ablation {index + 1}/{len(chosen)}: {name} ...', flush=True)
        out = os.path.join(work_dir, f'ablation_{index}')
        epoch_log = _EpochLog()
        progress = logging.getLogger(hparams.PROGRESS_LOGGER)
        level = progress.level
        progress.setLevel(logging.INFO)  # records below the effective level (WARNING) never reach a handler
        progress.addHandler(epoch_log)
        start = time.perf_counter()
        try:
            history = train.train_and_export(train_files, eval_files, transform_output, os.path.join(out, 'model'),
                                             os.path.join(out, 'run'),
                                             dataclasses.replace(settings, test_time_flip=False))
        finally:
            progress.removeHandler(epoch_log)
            progress.setLevel(level)
        seconds = time.perf_counter() - start
        by_flip = {flip: score_saved_model(os.path.join(out, 'model'), images, masks, mirror=flip == 'on')
                   for flip in ('off', 'on')}
        rows.append({'variant': name, 'seconds': seconds,
                     'epochs_trained': len(history.get('loss', [])), 'epoch_log': epoch_log.lines,
                     'settings': dataclasses.asdict(settings), 'quality_by_test_time_flip': by_flip,
                     'quality': by_flip['on' if settings.test_time_flip else 'off']})
        print(f'    {rows[-1]["quality"]}', flush=True)
    return rows
