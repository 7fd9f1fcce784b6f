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


def test_a_same_day_result_of_another_cpu_kind_is_kept(tmp_path):
    day = '2026-11-26T10:00:00+00:00'
    amd = {'date': day, 'machine': {'cpus': 2, 'cpu': {'model_name': 'AMD EPYC', 'amx_bf16': False,
                                                        'avx512_bf16': False}}, 'value': 1}
    xeon = {'date': day, 'machine': {'cpus': 2, 'cpu': {'model_name': 'Intel Xeon', 'amx_bf16': True,
                                                         'avx512_bf16': True}}, 'value': 2}
    first = results_file.write(amd, str(tmp_path), 'amd\n', name='speed')
    second = results_file.write(xeon, str(tmp_path), 'xeon\n', name='speed')
    assert second == str(tmp_path / 'speed-2026-11-26-amx.json') != first
    assert json.load(open(first))['value'] == 1 and json.load(open(second))['value'] == 2
    assert (tmp_path / 'speed-2026-11-26-amx.md').read_text() == 'xeon\n'
    # the same kind again replaces its own day's file
    rerun = dict(amd, value=3)
    assert results_file.write(rerun, str(tmp_path), 'amd again\n', name='speed') == first
    assert json.load(open(first))['value'] == 3


def test_a_kind_emulated_by_capping_onednn_is_a_kind_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', 'AVX2')
    capped = results_file.cpu_kind()
    assert capped['onednn_max_cpu_isa'] == 'AVX2' and not capped['amx_bf16'] and not capped['avx512_bf16']
    assert results_file.cpu_tag(capped) == 'no-bf16-capped' != results_file.cpu_tag(dict(capped, onednn_max_cpu_isa=None))
    day = '2026-11-26T10:00:00+00:00'
    real = {'date': day, 'machine': {'cpus': 2, 'cpu': dict(capped, onednn_max_cpu_isa=None)}}
    first = results_file.write(real, str(tmp_path), 'real\n', name='speed')
    emulated = results_file.write({'date': day, 'machine': {'cpus': 2, 'cpu': capped}}, str(tmp_path), 'x\n',
                                  name='speed')
    assert emulated == str(tmp_path / 'speed-2026-11-26-no-bf16-capped.json') != first
