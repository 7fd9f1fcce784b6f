"""bench/results_file.py: every benchmark's files are named from its header's date, in one place."""

import json

from bench import results_file


def test_results_are_named_by_benchmark_and_date(tmp_path, capsys):
    results = {**results_file.header('bench.example', ['--steps', '2']), 'value': 1.5}
    day = results['date'][:10]
    path = results_file.write(results, str(tmp_path / 'results'), '# table\n', name='example')
    assert path == str(tmp_path / 'results' / f'example-{day}.json')
    assert json.load(open(path))['command'] == 'python -m bench.example --steps 2'
    assert (tmp_path / 'results' / f'example-{day}.md').read_text() == '# table\n'
    # bench.run's own results carry no name: <date>.json
    assert results_file.write(results, str(tmp_path), 'x') == str(tmp_path / f'{day}.json')
    assert '# table' in capsys.readouterr().out
