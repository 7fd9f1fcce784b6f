"""bench/run.py end to end on tiny sizes: every section is measured and the results files are written."""

import json
import os

import pytest

from bench import run

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_bench_runs_on_tiny_sizes(tmp_path):
    results = run.main(['--num_train', '16', '--num_test', '8', '--epochs', '2', '--batch_size', '8', '--pipeline_epochs', '2',
                        '--work_dir', str(tmp_path / 'work'), '--results_dir', str(tmp_path / 'results')])
    for section in ('pipeline', 'training', 'preprocessing', 'serving', 'evaluation', 'flops', 'ratios'):
        assert section in results
    assert results['training']['baseline']['images_per_s'] > 0 and results['training']['project']['images_per_s'] > 0
    assert 0 <= results['training']['project']['quality']['mean_iou'] <= 1
    assert results['flops']['train_flops_per_image'] > results['flops']['forward_flops_per_image'] > 1e9
    assert set(results['pipeline']['components_s']) >= {'TfdsExampleGen', 'Transform', 'Trainer', 'Evaluator'}
    written = os.listdir(tmp_path / 'results')
    assert sorted(os.path.splitext(f)[1] for f in written) == ['.json', '.md']
    stored = json.load(open(tmp_path / 'results' / [f for f in written if f.endswith('.json')][0]))
    assert stored['ratios'] == pytest.approx(results['ratios'])
