"""Watches the served model: compares a window of logged requests with what the model was trained on.

    python -m serving --model_root outputs/petseg/serving_model --log_dir request_log   # logs 10% of requests
    python -m pipeline.monitor --log_dir request_log --output_dir outputs               # the last 24 hours
    python local_runner.py --when_drift outputs/petseg/monitor/latest.json              # retrains only if warranted

Reads the served version's references (its training images' sizes and the predictions evaluated on it, stored in
the version; for a version pushed before they were, found through MLMD lineage:
`components/request_monitor/monitor.py`), measures each feature's skew against them and its drift against the
previous window (TFDV, Jensen-Shannon divergence), prints the table, and writes the verdict to
`<output_dir>/<name>/monitor/verdict-<UTC time>.json` and `latest.json`. Exit status: 0 when nothing warrants
retraining, 3 when it is warranted (a scheduler can branch on it), 2 for bad arguments.
"""

import os

os.environ['TF_USE_LEGACY_KERAS'] = '1'  # before TensorFlow is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

RETRAIN_EXIT_CODE = 3


JUDGEMENT_FLAGS = ('window_hours', 'skew_threshold', 'drift_threshold', 'min_requests')


def add_judgement_flags(parser, prefix: str = '') -> None:
    """The window and thresholds; `kubeflow_runner.py` adds them with the prefix `monitor_` for its monitoring
    pipeline (its `--drift_threshold` is the data's)."""
    parser.add_argument(f'--{prefix}window_hours', type=float, default=24.0,
                        help='the window judged ends now and lasts this long (default: 24)')
    parser.add_argument(f'--{prefix}skew_threshold', type=float, default=0.3,
                        help='Jensen-Shannon divergence from the training data / evaluated predictions that counts '
                             'as skew (default: 0.3)')
    parser.add_argument(f'--{prefix}drift_threshold', type=float, default=0.3,
                        help='Jensen-Shannon divergence from the previous window that counts as drift (default: 0.3)')
    parser.add_argument(f'--{prefix}min_requests', type=int, default=50,
                        help='fewer requests in the window never warrant retraining (default: 50)')


def judgement_settings(args, parser, prefix: str = '') -> dict:
    """{window_hours, skew_threshold, drift_threshold, min_requests} from the flags; parser.error() for a
    threshold outside (0, 1], a window <= 0 or a minimum below 1."""
    settings = {name: getattr(args, prefix + name) for name in JUDGEMENT_FLAGS}
    for name in ('skew_threshold', 'drift_threshold'):
        if not 0 < settings[name] <= 1:
            parser.error(f'--{prefix}{name} must be in (0, 1], got {settings[name]}')
    if settings['window_hours'] <= 0 or settings['min_requests'] < 1:
        parser.error(f'--{prefix}window_hours must be > 0 and --{prefix}min_requests >= 1')
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--log_dir', required=True, help="the server's --log_dir")
    parser.add_argument('--output_dir', default='outputs', help="the runner's --output_dir (default: ./outputs)")
    parser.add_argument('--name', default='petseg', help='the pipeline name (default: petseg)')
    parser.add_argument('--serving_dir', help='the serving root (default: <output_dir>/<name>/serving_model)')
    parser.add_argument('--version', type=int, help='the served version to judge (default: the newest)')
    parser.add_argument('--since', type=float, help='the window\'s start, UNIX seconds (instead of --window_hours)')
    parser.add_argument('--until', type=float, help='the window\'s end, UNIX seconds (default: now)')
    parser.add_argument('--previous_since', type=float,
                        help='the start of the window drift is measured against (default: as long as the window, '
                             'just before it)')
    add_judgement_flags(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    judgement_settings(args, parser)
    run_dir = os.path.join(args.output_dir, args.name)
    from components.request_monitor import monitor
    try:
        refs, found_in = monitor.served_references(args.serving_dir or os.path.join(run_dir, 'serving_model'),
                                                   args.version, os.path.join(run_dir, 'metadata.db'))
    except ValueError as e:
        parser.error(str(e))
    thresholds = monitor.Thresholds(args.skew_threshold, args.drift_threshold, args.min_requests)
    verdict = monitor.judge(os.path.abspath(args.log_dir), refs, thresholds, args.until or time.time(),
                            args.window_hours, args.since, args.previous_since)
    latest = monitor.write_verdict(verdict, os.path.join(run_dir, 'monitor'))
    since, until = verdict['window']
    print(f'Version {refs.version} of {args.name}: requests logged in {args.log_dir} '
          f'between {time.strftime("%Y-%m-%d %H:%M", time.gmtime(since))} and '
          f'{time.strftime("%Y-%m-%d %H:%M", time.gmtime(until))} UTC, against the references in {found_in}\n')
    print(monitor.table(verdict))
    print(f'\nVerdict: {latest}')
    return RETRAIN_EXIT_CODE if verdict['retrain'] else 0


if __name__ == '__main__':
    sys.exit(main())
