"""KerasTuner through `modules.tune.tuner_fn` on the e2e scenario's Transform output: trials train with the
Trainer's code, are scored on held-out training examples, and the best values come back by name."""

import os

import pytest
from tfx.components.trainer.fn_args_utils import FnArgs

from modules import hparams, paths, tune
from pipeline import config as config_lib


@pytest.fixture(scope='module')
def searched(scenario, tmp_path_factory):
    transform = os.path.join(scenario.root, 'pipeline_root', 'Transform')
    examples = paths.version_dir(os.path.join(transform, 'transformed_examples'))
    config = scenario.config.with_overrides({'training.validation_split': 0.25, 'tuning.tune': True,
                                             'tuning.max_trials': 2, 'tuning.trial_epochs': 1,
                                             'tuning.trial_steps_per_epoch': 1})
    fn_args = FnArgs(train_files=[os.path.join(paths.split_dir(examples, 'train'), '*')],
                     eval_files=[os.path.join(paths.split_dir(examples, 'eval'), '*')],
                     transform_graph_path=paths.version_dir(os.path.join(transform, 'transform_graph')),
                     working_dir=str(tmp_path_factory.mktemp('tuning')), custom_config=config.to_tuner_custom_config())
    result = tune.tuner_fn(fn_args)
    result.tuner.search(**result.fit_kwargs)
    return result.tuner


def test_each_trial_is_scored_and_the_best_values_name_training_settings(searched):
    trials = searched.oracle.get_best_trials(2)
    assert len(trials) == 2 and all(0.0 <= trial.score <= 1.0 for trial in trials)
    assert trials[0].score >= trials[1].score
    best = searched.get_best_hyperparameters()[0].values
    assert set(best) == set(hparams.TUNABLE)
    assert best == trials[0].hyperparameters.values, 'the best values are the best-scored trial\'s'
    assert trials[0].hyperparameters.values != trials[1].hyperparameters.values, 'the search tried two points'
    space = tune.search_space()
    for name, value in best.items():  # every value is one the search space allows
        hp = space._hps[name][0]
        assert (hp.min_value <= value <= hp.max_value) if hasattr(hp, 'min_value') else value in hp.values, name
    # The names are the Trainer's settings: a run_fn handed them trains with them, validated like any setting.
    tuned = hparams.with_hyperparameters(config_lib.preset('smoke').training, best)
    tuned.validate()
    with pytest.raises(ValueError, match='not tunable'):
        hparams.with_hyperparameters(tuned, {'momentum': 0.9})


def test_tuning_without_held_out_examples_is_refused(scenario):
    custom_config = scenario.config.to_tuner_custom_config()
    with pytest.raises(ValueError, match='validation_split > 0'):
        tune.trial_training(custom_config)


def test_a_search_whose_trials_all_fail_fails_instead_of_handing_over_defaults(scenario, tmp_path):
    config = scenario.config.with_overrides({'training.validation_split': 0.25, 'tuning.max_trials': 1})
    fn_args = FnArgs(train_files=[str(tmp_path / 'missing-*')], eval_files=[str(tmp_path / 'missing-*')],
                     transform_graph_path=paths.version_dir(os.path.join(scenario.root, 'pipeline_root', 'Transform',
                                                                         'transform_graph')),
                     working_dir=str(tmp_path / 'tuning'), custom_config=config.to_tuner_custom_config())
    result = tune.tuner_fn(fn_args)
    with pytest.raises(RuntimeError, match='(?s)Every one of the 1 tuning trials failed; the first error: '
                                           '.*No transformed examples match'):
        result.tuner.search(**result.fit_kwargs)
