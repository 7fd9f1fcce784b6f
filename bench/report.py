"""Renders the current figures from `bench/results/*.json` into the README and docs/benchmarks.md.

    python -m bench.report            # prints both tables
    python -m bench.report --write    # replaces the tables between the markers in README.md and docs/benchmarks.md

Figures are never copied by hand: each row is the newest result of its benchmark on one CPU kind (AMX, AVX512-BF16
without AMX, no bfloat16, or one emulated by capping oneDNN's instructions: `modules/cpu.py`), with the file it
came from; the README leaves emulated kinds to docs/benchmarks.md. Dated narratives stay in the results' own
`.md` files.
`tests/bench/test_report.py` fails when a committed table differs from what this renders.
"""

import argparse
import glob
import json
import os
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from bench import results_file

README = os.path.join(results_file.ROOT, 'README.md')
BENCHMARKS_PAGE = os.path.join(results_file.ROOT, 'docs', 'benchmarks.md')
START, END = '<!-- figures:start (python -m bench.report --write) -->', '<!-- figures:end -->'
_KIND_NAMES = {'amx': 'Xeon with AMX', 'avx512-bf16': 'AVX512-BF16, no AMX', 'no-bf16': 'no bfloat16',
               'no-bf16-capped': 'no bfloat16, emulated (oneDNN capped)'}
# Which results a benchmark's files are: the file name's stem without its date and CPU tag.
_DATED = re.compile(r'^(?P<name>[a-z0-9-]*?)-?(?P<date>\d{4}-\d{2}-\d{2})(-\d{4}|-v\d+)?(-(amx|avx512-bf16|no-bf16)(-capped)?)?$')


def _x(value: float) -> str:
    return f'{value:.2f}x'


def _points(value: float) -> str:
    return f'{value:+.1f} points'


def _time_to_quality(result: Dict) -> str:
    """The project's and the bfloat16 control's speed-ups to the target; a side that ran and missed it is told
    from one that did not run."""
    sides = result['summary']['sides']
    return ' / '.join('not run' if side is None else _x(side['speedup_vs_tutorial'])
                      if side.get('speedup_vs_tutorial') else 'not reached'
                      for side in (sides.get(k) for k in ('project', 'tutorial_bfloat16')))


# benchmark name -> [(figure, how to read it from the result)], headline figures first.
FIGURES: Dict[str, List[Tuple[str, Callable[[Dict], Optional[str]]]]] = {
    '': [  # python -m bench.run: the pipeline against the tutorial's code on the same generated images
        ('training speed vs the tutorial (median epoch)', lambda r: _x(r['ratios']['train_throughput_vs_baseline'])),
        ('training step vs the tutorial (best quartile)',
         lambda r: _x(r['ratios']['train_step_best_quartile_vs_baseline'])),
        ('pixel accuracy vs the tutorial', lambda r: _points(r['ratios']['pixel_accuracy_points_vs_baseline'])),
        ('mean IoU vs the tutorial', lambda r: _points(r['ratios']['mean_iou_points_vs_baseline'])),
        ('serving p50 of one 500x375 JPEG vs model.predict (lower is better)',
         lambda r: _x(r['ratios']['serving_p50_500x375_vs_predict (lower is better)'])),
    ],
    'real-photos': [  # python -m bench.run --source_dir ../shared/data/oxford-pets-real --preset real
        ('real photos from random weights: pixel accuracy / mean IoU',
         lambda r: '{pixel_accuracy:.3f} / {mean_iou:.3f}'.format(**r['quality']['project']['quality'])),
        ('real photos: pixel accuracy vs the tutorial\'s code',
         lambda r: _points(r['ratios']['from_scratch_pixel_accuracy_points_vs_tutorial_code'])),
    ],
    'train-speed': [  # python -m bench.train_speed
        ('training step vs the tutorial, step-interleaved (best quartile / median)',
         lambda r: f"{_x(r['sides']['project']['vs_tutorial_best_quartile'])} / "
                   f"{_x(r['sides']['project']['vs_tutorial_median'])}"),
    ],
    'scale': [  # python -m bench.scale
        ('peak memory of a local run, 1 epoch (images: GiB)',
         lambda r: ', '.join(f"{run['images']}: {run['peak_rss_mb']['run'] / 1024:.1f}" for run in r['runs'])),
        ('steepest component time growth (exponent of time vs images; 1 is linear)',
         lambda r: '{1} {0:.2f}'.format(*max((g['exponent'], c) for c, g in r['growth']['components'].items()))),
        ('seconds per 1,000 images: ExampleGen / Transform / Trainer (1 epoch) / Evaluator',
         lambda r: ' / '.join(f"{r['growth']['components'].get(c, {}).get('seconds_per_1000_images', '-')}"
                              for c in ('TfdsExampleGen', 'Transform', 'Trainer', 'Evaluator'))),
    ],
    'time-to-quality': [  # python -m bench.time_to_quality
        ("time to the tutorial's final pixel accuracy vs the tutorial: project / tutorial + mixed bfloat16",
         _time_to_quality),
    ],
    'time-to-quality-pretrained': [  # python -m bench.time_to_quality --encoder_weights ENCODER.h5
        ("time to the tutorial's final pixel accuracy from a frozen pretrained encoder (the tutorial's setting) vs "
         "the tutorial: project / tutorial + mixed bfloat16",
         _time_to_quality),
    ],
    'serving-load': [  # python -m bench.serve_load
        ('local server, 4 clients: requests/s (p99 ms), serving_default',
         lambda r: next(f"{run['requests_per_s']:.1f} ({run['p99_ms']:.0f} ms)" for run in r['runs']
                        if run['signature'] == 'serving_default')),
    ],
}
HEADLINE = ('', 'train-speed', 'time-to-quality-pretrained', 'real-photos')


def newest_results(results_dir: str = results_file.RESULTS_DIR) -> Dict[Tuple[str, str], Tuple[str, Dict]]:
    """(benchmark name, CPU tag) -> (file name, result) of the newest result of each benchmark on each CPU kind."""
    newest: Dict[Tuple[str, str], Tuple[str, Dict]] = {}
    for path in sorted(glob.glob(os.path.join(results_dir, '*.json'))):
        match = _DATED.match(os.path.splitext(os.path.basename(path))[0])
        if not match or match.group('name') not in FIGURES:
            continue
        with open(path) as f:
            result = json.load(f)
        cpu = (result.get('machine') or {}).get('cpu')
        if not cpu or 'date' not in result:
            continue  # a result without its machine cannot be told apart from another kind's
        key = (match.group('name'), results_file.cpu_tag(cpu))
        if key not in newest or result['date'] > newest[key][1]['date']:
            newest[key] = (os.path.basename(path), result)
    return newest


def figures_table(names: Sequence[str] = tuple(FIGURES), results_dir: str = results_file.RESULTS_DIR,
                  emulated: bool = True) -> str:
    """The Markdown table of the newest figures of the benchmarks `names`, one row per figure and CPU kind
    (kinds emulated by capping oneDNN's instructions only if `emulated`)."""
    newest = newest_results(results_dir)
    rows = ['| figure | CPU kind (2 cores) | value | date | from |', '|---|---|---|---|---|']
    for name in names:
        for label, read in FIGURES[name]:
            for tag in _KIND_NAMES:
                if (name, tag) not in newest or (tag.endswith('-capped') and not emulated):
                    continue
                file_name, result = newest[(name, tag)]
                try:
                    value = read(result)
                except (KeyError, StopIteration, TypeError):
                    continue  # an older file without this figure
                rows.append(f'| {label} | {_KIND_NAMES[tag]} | {value} | {result["date"][:10]} | '
                            f'[{file_name}](bench/results/{file_name}) |')
    return '\n'.join(rows)


def replace_between_markers(text: str, table: str, link_prefix: str = '') -> str:
    """`text` with the block between START and END replaced by `table` (links made relative to the page)."""
    if START not in text or END not in text:
        raise ValueError(f'the page has no {START} ... {END} block')
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f'{head}{START}\n{table.replace("](bench/results/", f"]({link_prefix}bench/results/")}\n{END}{tail}'


def rendered_pages() -> Dict[str, str]:
    """path -> the page's text with its figures table as the results say today."""
    pages = {}
    # The README shows the kinds users run on; the benchmarks page every kind measured, emulations included.
    for path, names, prefix, emulated in ((README, HEADLINE, '', False), (BENCHMARKS_PAGE, tuple(FIGURES), '../', True)):
        with open(path) as f:
            pages[path] = replace_between_markers(f.read(), figures_table(names, emulated=emulated), prefix)
    return pages


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--write', action='store_true', help='update README.md and docs/benchmarks.md in place')
    args = parser.parse_args(argv)
    if not args.write:
        print(figures_table())
        return
    for path, text in rendered_pages().items():
        with open(path, 'w') as f:
            f.write(text)
        print(f'wrote {os.path.relpath(path, results_file.ROOT)}')


if __name__ == '__main__':
    main()
