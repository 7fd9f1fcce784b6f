"""bench.scale's fitting and tables on runs whose growth is known, and (slow) two real runs end to end."""

import json

import pytest

from bench import results_file, scale


def _run(images, linear_s, quadratic_s, peak_mb):
    return {'images': images, 'wall_s': 1.0, 'seconds': {'Transform': linear_s, 'Evaluator': quadratic_s,
                                                          'ImportSchemaGen': 0.1},
            'peak_rss_mb': {'run': peak_mb, 'Transform': peak_mb}, 'num_examples': {}}


def test_the_fit_finds_linear_and_quadratic_growth_and_the_memory_slope():
    runs = [_run(n, 0.02 * n, 2e-6 * n * n, 2000 + 0.1 * n) for n in (300, 3000, 30000)]
    growth = scale.fit(runs)
    assert growth['components']['Transform']['exponent'] == pytest.approx(1.0, abs=1e-3)
    assert growth['components']['Transform']['seconds_per_1000_images'] == pytest.approx(20.0, rel=1e-3)
    assert growth['components']['Evaluator']['exponent'] == pytest.approx(2.0, abs=1e-3)
    assert 'ImportSchemaGen' not in growth['components'], 'sub-second components say nothing about growth'
    assert growth['memory']['mb_per_1000_images'] == pytest.approx(100.0, rel=1e-3)
    assert growth['memory']['largest_over_3000'] == pytest.approx(5000 / 2300, rel=1e-3)


def test_the_table_names_the_machine_and_every_component():
    runs = [_run(n, 0.02 * n, 0.01 * n, 2000) for n in (300, 3000)]
    results = {**results_file.header('bench.scale', ['--sizes', '300', '3000']), 'runs': runs,
               'growth': scale.fit(runs)}
    text = scale.markdown(results)
    assert '| Transform | 6 s | 60 s | 1.0 | 20.0 |' in text and 'peak memory of the run' in text
    assert results['machine']['cpu']['model_name'] in text
    json.dumps(results)


@pytest.mark.slow
def test_two_small_runs_end_to_end(tmp_path):
    results = scale.main(['--sizes', '24', '48', '--work_dir', str(tmp_path / 'work'), '--results_dir',
                          str(tmp_path / 'results')])
    assert [r['images'] for r in results['runs']] == [24, 48]
    assert results['runs'][1]['num_examples'] == {'train': 24, 'eval': 24}
    assert all(r['peak_rss_mb']['run'] > 500 and r['seconds']['Trainer'] > 0 for r in results['runs'])
    assert sorted(p.suffix for p in (tmp_path / 'results').iterdir()) == ['.json', '.md', '.png']
