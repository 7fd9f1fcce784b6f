"""Lists every local run of a pipeline from MLMD and draws its metrics over the runs.

    python -m pipeline.runs --output_dir outputs                 # the default pipeline, `petseg`
    python -m pipeline.runs --output_dir outputs --name shapes --plot runs.png

Prints one Markdown row per run: when, the data version, the candidate's pixel accuracy and mean IoU,
blessed or not and why, the pushed version; writes the PNG (default `<output_dir>/<name>/runs.png`).
"""

import os

os.environ['TF_USE_LEGACY_KERAS'] = '1'  # before TensorFlow is imported (TFMA reads the results)

import argparse  # noqa: E402
import sys  # noqa: E402
from typing import Optional, Sequence  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output_dir', default='outputs', help='the runner\'s --output_dir (default: ./outputs)')
    parser.add_argument('--name', default='petseg', help='the pipeline name (default: petseg)')
    parser.add_argument('--plot', help='PNG of the metrics over the runs (default: <output_dir>/<name>/runs.png)')
    args = parser.parse_args(argv)
    from pipeline.local import history
    run_dir = os.path.join(args.output_dir, args.name)
    if not os.path.exists(os.path.join(run_dir, 'metadata.db')):
        parser.error(f'no runs of {args.name!r} under {args.output_dir} ({run_dir}/metadata.db is missing)')
    summaries = history.read(run_dir, args.name)
    print(history.table(summaries))
    path = history.plot(summaries, args.plot or os.path.join(run_dir, 'runs.png'))
    print(f'\n{len(summaries)} runs; metrics over the runs: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
