"""The figures tables are rendered from bench/results, never typed: the committed pages must match them."""

import json

from bench import report


def test_the_committed_tables_are_what_the_results_say():
    for path, rendered in report.rendered_pages().items():
        with open(path) as f:
            assert f.read() == rendered, f'{path} is stale: run python -m bench.report --write'


def _result(directory, name, date, cpu, ratio):
    result = {'date': date, 'machine': {'cpus': 2, 'cpu': cpu},
              'sides': {'project': {'vs_tutorial_best_quartile': ratio, 'vs_tutorial_median': ratio}}}
    (directory / name).write_text(json.dumps(result))


def test_the_newest_result_of_each_cpu_kind_is_shown_and_kinds_never_mix(tmp_path):
    amx = {'model_name': 'Xeon', 'amx_bf16': True, 'avx512_bf16': True}
    amd = {'model_name': 'EPYC', 'amx_bf16': False, 'avx512_bf16': True}
    _result(tmp_path, 'train-speed-2026-11-26.json', '2026-11-26T10:00:00', amx, 1.5)
    _result(tmp_path, 'train-speed-2026-11-27-0205.json', '2026-11-27T02:05:00', amx, 1.9)
    _result(tmp_path, 'train-speed-2026-11-27-avx512-bf16.json', '2026-11-27T01:00:00', amd, 1.1)
    _result(tmp_path, 'train-speed-2026-11-29-no-bf16-capped.json', '2026-11-29T01:00:00',
            dict(amd, avx512_bf16=False, onednn_max_cpu_isa='AVX2'), 1.3)
    (tmp_path / 'train-speed-2026-11-28.json').write_text(json.dumps({'date': '2026-11-28'}))  # no machine: ignored
    table = report.figures_table(['train-speed'], str(tmp_path))
    rows = table.splitlines()[2:]
    assert len(rows) == 3
    assert '| Xeon with AMX | 1.90x / 1.90x | 2026-11-27 | [train-speed-2026-11-27-0205.json]' in rows[0]
    assert '| AVX512-BF16, no AMX | 1.10x / 1.10x | 2026-11-27 |' in rows[1]
    assert '| no bfloat16, emulated (oneDNN capped) | 1.30x / 1.30x | 2026-11-29 |' in rows[2], 'never the real kind'


def test_links_are_made_relative_to_the_page():
    page = f'intro\n{report.START}\nold\n{report.END}\noutro\n'
    table = '| x | [a.json](bench/results/a.json) |'
    assert report.replace_between_markers(page, table, '../') == \
        f'intro\n{report.START}\n| x | [a.json](../bench/results/a.json) |\n{report.END}\noutro\n'


def test_a_side_that_did_not_run_is_told_from_one_that_missed_the_target():
    [(_, read)] = report.FIGURES['time-to-quality']
    sides = {'project': {'speedup_vs_tutorial': 2.5}, 'tutorial_bfloat16': {'speedup_vs_tutorial': None}}
    assert read({'summary': {'sides': sides}}) == '2.50x / not reached'
    assert read({'summary': {'sides': {'project': sides['project']}}}) == '2.50x / not run'


def test_time_to_quality_from_a_pretrained_encoder_is_its_own_benchmark(tmp_path):
    amd = {'model_name': 'EPYC', 'amx_bf16': False, 'avx512_bf16': True}
    for name, speedup in (('time-to-quality-2026-12-06.json', 4.0), ('time-to-quality-pretrained-2026-12-06.json', 2.5)):
        (tmp_path / name).write_text(json.dumps({'date': '2026-12-06T03:00:00', 'machine': {'cpus': 2, 'cpu': amd},
                                                 'summary': {'sides': {'project': {'speedup_vs_tutorial': speedup}}}}))
    assert set(report.newest_results(str(tmp_path))) == {('time-to-quality', 'avx512-bf16'),
                                                         ('time-to-quality-pretrained', 'avx512-bf16')}
    rows = report.figures_table(['time-to-quality', 'time-to-quality-pretrained'], str(tmp_path)).splitlines()[2:]
    assert '4.00x / not run' in rows[0] and 'time-to-quality-2026-12-06.json' in rows[0]
    assert '2.50x / not run' in rows[1] and 'time-to-quality-pretrained-2026-12-06.json' in rows[1]


def test_the_readme_leaves_emulated_kinds_to_the_benchmarks_page(tmp_path):
    amd = {'model_name': 'EPYC', 'amx_bf16': False, 'avx512_bf16': True}
    _result(tmp_path, 'train-speed-2026-12-05.json', '2026-12-05T01:00:00', amd, 1.6)
    _result(tmp_path, 'train-speed-2026-12-06.json', '2026-12-06T01:00:00',
            dict(amd, avx512_bf16=False, onednn_max_cpu_isa='AVX2'), 1.0)
    assert len(report.figures_table(['train-speed'], str(tmp_path)).splitlines()) == 4
    [row] = report.figures_table(['train-speed'], str(tmp_path), emulated=False).splitlines()[2:]
    assert '| AVX512-BF16, no AMX | 1.60x / 1.60x |' in row
