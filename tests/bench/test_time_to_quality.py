"""The time-to-quality benchmark: its bookkeeping by hand, and the whole benchmark on tiny sizes (slow)."""

import json
import os

import pytest

from bench import time_to_quality, train_speed


def _epochs(*pairs):
    return [{'train_s': seconds, 'pixel_accuracy': accuracy, 'images': 100} for seconds, accuracy in pairs]


def test_time_to_target_stops_at_the_first_epoch_that_reaches_it():
    epochs = _epochs((30, 0.5), (10, 0.79), (10, 0.81), (10, 0.7))
    assert time_to_quality.time_to_target(epochs, 0.8) == {'epoch': 3, 'seconds': 50, 'images': 300}
    assert time_to_quality.time_to_target(epochs, 0.9) is None


def test_the_target_is_the_tutorials_final_figure_and_ratios_are_of_times():
    rounds = [{'tutorial': {'epochs': _epochs((40, 0.6), (10, 0.8))},
               'project': {'epochs': _epochs((5, 0.85), (5, 0.9))},
               'tutorial_bfloat16': {'epochs': _epochs((40, 0.6), (10, 0.7))}}]
    summary = time_to_quality.summarize(rounds)
    assert summary['target_pixel_accuracy'] == 0.8
    assert summary['sides']['project']['median_seconds_to_target'] == 5
    assert summary['sides']['project']['speedup_vs_tutorial'] == 10.0
    assert summary['sides']['tutorial_bfloat16']['speedup_vs_tutorial'] is None, 'never reached the target'
    assert summary['sides']['tutorial']['images_per_s'] == 10.0, 'the epochs after the first'


def test_every_round_of_the_tutorial_reaches_the_target():
    rounds = [{'tutorial': {'epochs': _epochs((40, 0.7), (10, 0.93))}, 'project': {'epochs': _epochs((5, 0.95))}},
              {'tutorial': {'epochs': _epochs((40, 0.7), (10, 0.92))}, 'project': {'epochs': _epochs((6, 0.95))}}]
    summary = time_to_quality.summarize(rounds)
    assert summary['target_pixel_accuracy'] == 0.92, 'the weaker round, not the median of two'
    assert summary['sides']['tutorial']['speedup_vs_tutorial'] == 1.0
    assert summary['sides']['project']['speedup_per_round'] == [10.0, round(50 / 6, 2)]
    assert summary['sides']['project']['speedup_vs_tutorial'] == round(50 / 5.5, 2)


@pytest.mark.slow
@pytest.mark.e2e
def test_the_benchmark_runs_every_side_on_tiny_sizes(tmp_path):
    results = time_to_quality.main(['--num_train', '24', '--num_test', '8', '--tutorial_epochs', '2',
                                    '--project_epochs', '2', '--rounds', '1', '--work_dir', str(tmp_path / 'work'),
                                    '--results_dir', str(tmp_path / 'results')])
    [round_] = results['rounds']
    assert set(round_) == set(time_to_quality.SIDES)
    assert [e['images'] for e in round_['tutorial']['epochs']] == [24, 24], 'partial batches of 24 (batch 64)'
    assert [e['images'] for e in round_['project']['epochs']] == [24, 24]
    assert all(0 <= e['pixel_accuracy'] <= 1 for side in round_.values() for e in side['epochs'])
    assert results['summary']['sides']['tutorial']['speedup_vs_tutorial'] == 1.0
    stored = json.load(open(tmp_path / 'results' / [f for f in os.listdir(tmp_path / 'results')
                                                     if f.endswith('.json')][0]))
    assert stored['summary']['target_pixel_accuracy'] == results['summary']['target_pixel_accuracy']


@pytest.mark.slow
@pytest.mark.e2e
def test_from_a_pretrained_encoder_every_side_keeps_it_frozen(tmp_path):
    encoder = train_speed.random_encoder_weights(str(tmp_path / 'encoder.h5'))
    results = time_to_quality.main(['--num_train', '16', '--num_test', '8', '--tutorial_epochs', '1',
                                    '--project_epochs', '1', '--rounds', '1', '--sides', 'tutorial', 'project',
                                    '--encoder_weights', encoder, '--work_dir', str(tmp_path / 'work'),
                                    '--results_dir', str(tmp_path / 'results')])
    [round_] = results['rounds']
    assert {side: run['settings']['encoder_trained'] for side, run in round_.items()} == \
        {'tutorial': False, 'project': False}
    assert sorted(os.listdir(tmp_path / 'results'))[0].startswith('time-to-quality-pretrained-')
    assert 'pretrained, frozen (`encoder.h5`)' in time_to_quality.markdown(results)


def test_encoder_weights_must_be_an_h5_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        time_to_quality.main(['--encoder_weights', str(tmp_path / 'missing.h5'), '--no-write'])
    assert 'missing.h5' in capsys.readouterr().err
