"""bench/serve_load.py against the server over the scenario's pushed models: every request answered, files written."""

import json

from bench import serve_load


def test_the_load_run_serves_every_request_of_every_client(scenario, tmp_path):
    results = serve_load.main(['--model_root', scenario.serving_dir, '--clients', '2', '--requests', '3',
                               '--results_dir', str(tmp_path)])
    assert [run['signature'] for run in results['runs']] == ['serving_default', 'serving_full_size']
    for run in results['runs']:
        assert (run['clients'], run['requests'], run['errors']) == (2, 6, 0)
        assert 0 < run['p50_ms'] <= run['p99_ms'] and run['requests_per_s'] > 0
    stored = json.loads(next(tmp_path.glob('serving-load-*.json')).read_text())
    assert stored['runs'] == results['runs'] and stored['machine'] == results['machine']
    assert '| serving_default | 2 x 3 | 0 |' in next(tmp_path.glob('serving-load-*.md')).read_text()
