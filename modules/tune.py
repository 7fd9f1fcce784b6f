"""TFX Tuner entry point: `tuner_fn` searches a few training hyperparameters with KerasTuner.

The search space (`search_space`): learning rate, decoder dropout, BatchNorm momentum and augmentation
strength, each a `TrainingConfig` setting (`hparams.TUNABLE`), so the Tuner's best values feed the Trainer
through TFX's `hyperparameters` channel and replace the configured ones there (`train.run_fn`).

KerasTuner 1.4 imports Keras 3 (`import keras`), while this stack trains with `tf_keras` (Keras 2): its
stock tuners would call `fit` on our Keras 2 model with Keras 3 callbacks. So `PetsegTuner` keeps KerasTuner
for what it is good at (oracle, trial bookkeeping, resumable state under the Tuner's working directory) and
overrides `run_trial` to train each trial with the Trainer's own code (`train.build_model`, `train.datasets`,
`callbacks.training_callbacks`). A trial scores the validation mean IoU of the model the Trainer would export
(its BatchNorm statistics recomputed, `train.recompute_batchnorm`) on the part of the training split held out
by `validation_split`; the eval split, which blesses the model, is never looked at.
"""

import dataclasses
import logging
from typing import Any, Dict, List

import keras_tuner as kt
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner.component import TunerFnResult

from modules import callbacks, classes, hparams, train
from modules.hparams import TrainingConfig

OBJECTIVE = 'val_mean_iou'


def search_space() -> kt.HyperParameters:
    """The hyperparameters searched, named like the `TrainingConfig` fields they set."""
    space = kt.HyperParameters()
    space.Float('learning_rate', 3e-4, 3e-3, sampling='log')
    space.Choice('dropout', [0.0, 0.2, 0.4])
    space.Choice('batchnorm_momentum', [0.8, 0.9, 0.99])
    space.Float('augment_strength', 0.0, 1.5, step=0.25)
    assert set(space.values) == set(hparams.TUNABLE)
    return space


class PetsegTuner(kt.Tuner):
    """Random search whose trials train with the Trainer's code for `training.epochs` each."""

    def __init__(self, training: TrainingConfig, train_files: List[str], eval_files: List[str],
                 transform_output: str, max_trials: int,
                 description: classes.ClassDescription = classes.OXFORD_IIIT_PET, **kwargs):
        oracle = kt.oracles.RandomSearchOracle(
            objective=kt.Objective(OBJECTIVE, direction='max'), max_trials=max_trials, seed=training.seed,
            hyperparameters=search_space(), tune_new_entries=False)
        super().__init__(oracle=oracle, **kwargs)
        self._training = training
        self._train_files, self._eval_files = train_files, eval_files
        self._transform_output = tft.TFTransformOutput(transform_output)
        self._description = description

    def run_trial(self, trial, *args, **kwargs) -> Dict[str, float]:
        training = hparams.with_hyperparameters(self._training, trial.hyperparameters.values)
        logging.getLogger(hparams.PROGRESS_LOGGER).info('trial %s: %s', trial.trial_id, trial.hyperparameters.values)
        model = train.build_model(training, description=self._description,
                                  image_size=train.transformed_image_size(self._transform_output))
        train_dataset, validation = train.datasets(training, self._train_files, self._eval_files,
                                                   self._transform_output, training.batch_size)
        history = model.fit(train_dataset, epochs=training.epochs, steps_per_epoch=training.steps_per_epoch,
                            validation_data=validation, validation_steps=training.validation_steps,
                            callbacks=callbacks.training_callbacks(training), verbose=0)
        # Scored as the Trainer would export it: with the BatchNorm statistics recomputed at the final weights,
        # else (none recomputed) by the best epoch.
        recomputed = train.recompute_batchnorm(model, training, self._train_files, self._transform_output,
                                               validation, self._description)
        best = recomputed['after'][OBJECTIVE] if recomputed['images'] else max(history.history[OBJECTIVE])
        logging.getLogger(hparams.PROGRESS_LOGGER).info('trial %s: %s %.4f', trial.trial_id, OBJECTIVE, best)
        return {OBJECTIVE: best}

    def search(self, *args, **kwargs):
        # KerasTuner logs a failing trial and goes on; with every trial failed it would still hand the Trainer
        # the search space's defaults as "best". Fail the Tuner instead, with the first trial's error.
        super().search(*args, **kwargs)
        trials = list(self.oracle.trials.values())
        if not any(t.status == kt.engine.trial.TrialStatus.COMPLETED for t in trials):
            messages = [t.message for t in trials if getattr(t, 'message', None)]
            raise RuntimeError(f'Every one of the {len(trials)} tuning trials failed; the first error: '
                               f'{messages[0] if messages else "see the log"}')


def trial_training(custom_config: Dict[str, Any]) -> TrainingConfig:
    """The training settings of one trial: the Trainer's, with the tuning section's epochs and steps."""
    training = hparams.from_custom_config(custom_config)
    tuning = hparams.tuning_from_custom_config(custom_config)
    if training.validation_split <= 0:
        raise ValueError('Tuning needs training.validation_split > 0: trials are scored on held-out training '
                         'examples so that the eval split stays unseen.')
    epochs = tuning.trial_epochs
    return dataclasses.replace(training, epochs=epochs, warmup_epochs=min(training.warmup_epochs, epochs - 1),
                               steps_per_epoch=tuning.trial_steps_per_epoch or training.steps_per_epoch)


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    """TFX Tuner entry point.

    Args:
      fn_args: transformed train/eval files, the Transform graph, a working dir and the custom_config
        (`training` settings plus `tuning`: max_trials, trial_epochs, trial_steps_per_epoch).

    Returns:
      The tuner and (no) fit arguments; TFX runs the search and writes the best hyperparameters.
    """
    tuning = hparams.tuning_from_custom_config(fn_args.custom_config)
    tuner = PetsegTuner(trial_training(fn_args.custom_config), fn_args.train_files, fn_args.eval_files,
                        fn_args.transform_graph_path, max_trials=tuning.max_trials,
                        description=classes.from_custom_config(fn_args.custom_config)[0],
                        directory=fn_args.working_dir, project_name='petseg_tuning', overwrite=True)
    return TunerFnResult(tuner=tuner, fit_kwargs={})
