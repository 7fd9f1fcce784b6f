"""bench/run.py end to end on tiny sizes: every section is measured and the results files are written."""

import json
import os
import statistics

import pytest

from bench import run, train_speed

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_bench_runs_on_tiny_sizes(tmp_path):
    results = run.main(['--num_train', '16', '--num_test', '8', '--epochs', '2', '--batch_size', '8', '--pipeline_epochs', '2',
                        '--timed_steps', '3', '--other_precision', '--work_dir', str(tmp_path / 'work'),
                        '--results_dir', str(tmp_path / 'results')])
    for section in ('pipeline', 'training', 'preprocessing', 'serving', 'evaluation', 'flops', 'quality', 'ratios'):
        assert section in results
    assert 'ablation' not in results, 'the ablation is opt-in'
    assert results['training']['baseline']['images_per_s'] > 0 and results['training']['project']['images_per_s'] > 0
    assert 0 <= results['training']['project']['quality']['mean_iou'] <= 1
    for side in ('baseline', 'project', 'project_float32' if 'project_float32' in results['training'] else 'project_bfloat16'):
        assert len(results['training'][side]['step_by_step']['step_s']) == 3, side
        assert len(results['training'][side]['epoch_s']) == 2, side
    steps = {side: results['training'][side]['step_by_step'] for side in ('baseline', 'project')}
    # The ratio is the baseline's median step over the project's, from the steps the results keep.
    assert steps['project']['vs_baseline_median'] == pytest.approx(
        statistics.median(steps['baseline']['step_s']) / statistics.median(steps['project']['step_s']))
    assert results['ratios']['train_step_best_quartile_vs_baseline'] > 0
    assert results['flops']['train_flops_per_image'] > results['flops']['forward_flops_per_image'] > 1e9
    assert set(results['pipeline']['components_s']) >= {'TfdsExampleGen', 'Transform', 'Trainer', 'Evaluator'}
    written = os.listdir(tmp_path / 'results')
    assert sorted(os.path.splitext(f)[1] for f in written) == ['.json', '.md']
    stored = json.load(open(tmp_path / 'results' / [f for f in written if f.endswith('.json')][0]))
    assert stored['ratios'] == pytest.approx(results['ratios'])


def test_without_the_other_precision_only_the_tutorial_and_the_project_train(tmp_path):
    results = run.main(['--num_train', '16', '--num_test', '8', '--epochs', '1', '--batch_size', '8', '--pipeline_epochs', '1',
                        '--timed_steps', '2', '--no-other_precision', '--sections', 'speed',
                        '--work_dir', str(tmp_path / 'work'), '--results_dir', str(tmp_path / 'results')])
    assert set(results['training']) == {'settings', 'baseline', 'project'}
    assert results['training']['settings']['other_precision'] is False
    written = [f for f in os.listdir(tmp_path / 'results') if f.endswith('.md')]
    assert 'the other precision not trained' in open(tmp_path / 'results' / written[0]).read()


def test_quality_and_ablation_sections_alone(tmp_path):
    results = run.main(['--preset', 'smoke', '--num_train', '16', '--num_test', '8', '--sections', 'quality', 'ablation',
                        '--ablation_variants', '2', '--augment_scale', '0.2', '--validation_split', '0.25',
                        '--early_stopping_patience', '1', '--work_dir', str(tmp_path / 'work'),
                        '--results_dir', str(tmp_path / 'results')])
    assert 'training' not in results and 'serving' not in results
    quality = results['quality']
    assert quality['preset'] == 'smoke' and quality['project']['epochs_trained'] == 1
    for side in ('project', 'tutorial'):
        assert set(quality[side]['quality']) == {'pixel_accuracy', 'mean_iou', 'iou_pet', 'iou_background', 'iou_border'}
    assert [row['variant'] for row in results['ablation']] == ['as configured', 'no scale/rotation/shift augmentation']
    assert results['ablation'][0]['settings']['augmentation']['scale'] == 0.2
    assert results['ablation'][1]['settings']['augmentation']['scale'] == 0.0
    assert any(line.startswith('epoch 1/1 (') for line in results['ablation'][0]['epoch_log']), \
        'the Trainer\'s epoch lines are kept'
    assert set(results['ablation'][0]['quality_by_test_time_flip']) == {'off', 'on'}
    assert 'from_scratch_pixel_accuracy_points_vs_tutorial_code' in results['ratios']
    text = open(next((tmp_path / 'results').glob('*.md'))).read()
    assert '| as configured | 1 |' in text and "the tutorial's code (encoder trainable)" in text


def test_train_speed_times_and_profiles_every_side(tmp_path):
    results = train_speed.main(['--num_train', '8', '--batch_size', '4', '--steps', '2', '--block', '2',
                                '--profile_steps', '1', '--results_dir', str(tmp_path)])
    assert {'tutorial', 'project', 'project_subpixel'} <= set(results['sides'])
    tutorial_median = statistics.median(results['sides']['tutorial']['step_s'])
    for name, side in results['sides'].items():  # each side's ratio comes from the steps it keeps
        assert side['vs_tutorial_median'] == pytest.approx(tutorial_median / statistics.median(side['step_s'])), name
    assert all(len(side['step_s']) == 2 for side in results['sides'].values())
    assert results['settings']['block'] == 2
    assert set(results['profile']['sides']) == {'tutorial', 'project'}
    for profiled in results['profile']['sides'].values():
        # The decoder's transposed convolutions are the bulk of the work on both sides.
        # (under oneDNN's names, _MklNative<type>, where TensorFlow enables it: x86 with AVX-512 VNNI or AMX)
        assert 'Conv2DBackpropFilter' in {row['op_type'].replace('_MklNative', '') for row in profiled['top_op_types']}
        assert profiled['gflop_per_step'] > 4 * 1.0, 'over 1 GFLOP per image forward alone'
    assert '## Where a step' in open(next(tmp_path.glob('train-speed-*.md'))).read()
