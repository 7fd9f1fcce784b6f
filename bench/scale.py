"""How each component's time and the run's memory grow with the data: the pipeline at several dataset sizes.

    .venv/bin/python -m bench.scale                                   # 300, 3,000, 7,349 and 30,000 images
    .venv/bin/python -m bench.scale --sizes 300 3000 --work_dir /tmp/scale --no-write   # a quicker look

Each size is generated pets in the Oxford-IIIT Pet layout, half train, half test (7,349 is the real dataset's
size), run by `local_runner.py` in its own process with the default preset and `--epochs 1`; the run summary
gives each component's seconds and peak resident memory (`pipeline/local/memory.py`). Fitted per component:
the exponent of time against size (a log-log least-squares slope: 1 is linear) and seconds per 1,000 images;
for the run: the peak memory and its growth. Results (with the CPU kind) go to
`bench/results/scale-<date>.{json,md}` and a plot to `scale-<date>.png`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from bench import results_file

ROOT = results_file.ROOT
DEFAULT_SIZES = (300, 3000, 7349, 30000)


def run_size(size: int, work_dir: str, extra: Sequence[str] = ()) -> Dict:
    """Generates `size` pets and runs the pipeline on them once; returns seconds and peak memory per component."""
    data_dir = os.path.join(work_dir, f'pets_{size}')
    if not os.path.isdir(os.path.join(data_dir, 'images')):
        subprocess.run([sys.executable, '-m', 'components.tfds_example_gen.sample_data', data_dir,
                        '--num-train', str(size // 2), '--num-test', str(size - size // 2)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    output_dir = os.path.join(work_dir, f'outputs_{size}')
    # A fresh pipeline each time: an earlier run's blessed model would be evaluated beside the candidate.
    shutil.rmtree(output_dir, ignore_errors=True)
    start = time.monotonic()
    done = subprocess.run([sys.executable, 'local_runner.py', '--source_dir', data_dir, '--output_dir', output_dir,
                           '--epochs', '1', '--no_cache', *extra], cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(f'the run on {size} images failed:\n{done.stdout[-3000:]}')
    [summary_path] = [os.path.join(d, 'evaluation_summary.json') for d, _, files in
                      os.walk(os.path.join(output_dir, 'petseg', 'runs')) if 'evaluation_summary.json' in files]
    with open(summary_path) as f:
        summary = json.load(f)
    seconds = {c['node_id']: c['seconds'] for c in summary['components'] if not c['node_id'].endswith('resolver')}
    return {'images': size, 'wall_s': round(wall, 1), 'seconds': seconds, 'peak_rss_mb': summary['peak_rss_mb'],
            'num_examples': summary['num_examples']}


def fit(runs: List[Dict]) -> Dict:
    """Per component: time exponent (log-log slope) and seconds per 1,000 images; the run's memory growth."""
    sizes = np.array([r['images'] for r in runs], float)
    growth = {}
    for component in runs[0]['seconds']:
        seconds = np.array([r['seconds'].get(component, np.nan) for r in runs], float)
        usable = seconds > 0.5  # sub-second components say nothing about growth
        if usable.sum() >= 2:
            exponent = float(np.polyfit(np.log(sizes[usable]), np.log(seconds[usable]), 1)[0])
            per_thousand = float(np.polyfit(sizes[usable], seconds[usable], 1)[0] * 1000)
            growth[component] = {'exponent': round(exponent, 3), 'seconds_per_1000_images': round(per_thousand, 2)}
    peaks = np.array([r['peak_rss_mb']['run'] for r in runs], float)
    memory = {'peak_mb': dict(zip([int(s) for s in sizes], peaks.round(0).tolist())),
              'mb_per_1000_images': round(float(np.polyfit(sizes, peaks, 1)[0] * 1000), 1) if len(runs) > 1 else None}
    if 3000 in sizes and sizes.max() > 3000:
        memory['largest_over_3000'] = round(float(peaks[sizes.argmax()] / peaks[list(sizes).index(3000)]), 3)
    return {'components': growth, 'memory': memory}


def plot(runs: List[Dict], path: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    sizes = [r['images'] for r in runs]
    for component in runs[0]['seconds']:
        left.plot(sizes, [r['seconds'].get(component, 0) for r in runs], 'o-', label=component)
    left.set(xscale='log', yscale='log', xlabel='images', ylabel='seconds', title='component time')
    left.legend(fontsize=7)
    right.plot(sizes, [r['peak_rss_mb']['run'] / 1024 for r in runs], 'o-', label='run')
    for component in ('Transform', 'Trainer', 'Evaluator', 'TfliteExport'):
        right.plot(sizes, [r['peak_rss_mb'].get(component, 0) / 1024 for r in runs], '.--', label=component)
    right.set(xscale='log', xlabel='images', ylabel='GiB', title='peak resident memory')
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def markdown(results: Dict) -> str:
    runs, growth = results['runs'], results['growth']
    cpu = results['machine']['cpu']
    lines = [f'# bench.scale, {results["date"][:10]}', '',
             f'{results["machine"]["cpus"]} cores, {cpu["model_name"]} ({results_file.cpu_tag(cpu)}); '
             f'`{results["command"]}`; default preset, 1 epoch, generated pets, half train, half test.', '',
             '| component | ' + ' | '.join(f'{r["images"]} images' for r in runs) + ' | exponent | s per 1,000 |',
             '|---|' + '---|' * (len(runs) + 2)]
    for component in runs[0]['seconds']:
        fitted = growth['components'].get(component, {})
        lines.append(f'| {component} | ' + ' | '.join(f'{r["seconds"].get(component, 0):.0f} s' for r in runs)
                     + f' | {fitted.get("exponent", "-")} | {fitted.get("seconds_per_1000_images", "-")} |')
    lines.append('| peak memory of the run | ' + ' | '.join(f'{r["peak_rss_mb"]["run"] / 1024:.1f} GiB' for r in runs)
                 + ' | | |')
    lines.append('| whole run (wall) | ' + ' | '.join(f'{r["wall_s"]:.0f} s' for r in runs) + ' | | |')
    memory = growth['memory']
    lines += ['', f'Memory: {memory["mb_per_1000_images"]} MiB more per 1,000 images'
              + (f'; the largest run peaks at {memory["largest_over_3000"]}x the 3,000-image run'
                 if 'largest_over_3000' in memory else '') + '.', '',
              'Peak memory per component (MiB):', '',
              '| component | ' + ' | '.join(str(r['images']) for r in runs) + ' |', '|---|' + '---|' * len(runs)]
    for component in runs[0]['seconds']:
        lines.append(f'| {component} | ' + ' | '.join(str(r['peak_rss_mb'].get(component, '-')) for r in runs) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', type=int, nargs='+', default=list(DEFAULT_SIZES), help='dataset sizes in images')
    parser.add_argument('--work_dir', default='/tmp/petseg_scale', help='generated data and run outputs')
    parser.add_argument('--results_dir', default=results_file.RESULTS_DIR)
    parser.add_argument('--write', action=argparse.BooleanOptionalAction, default=True,
                        help='write the results into --results_dir (default: yes)')
    args, extra = parser.parse_known_args(argv)
    results = results_file.header('bench.scale', argv)
    results['runs'] = []
    for size in sorted(args.sizes):
        print(f'{size} images ...', flush=True)
        results['runs'].append(run_size(size, args.work_dir, [a for a in extra if a != '--']))
        print(json.dumps(results['runs'][-1]), flush=True)
    results['growth'] = fit(results['runs'])
    text = markdown(results)
    if args.write:
        path = results_file.write(results, args.results_dir, text, name='scale')
        plot(results['runs'], path[:-len('.json')] + '.png')
    else:
        print(text)
    return results


if __name__ == '__main__':
    main()
