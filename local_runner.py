"""Runs the petseg pipeline on this machine with LocalDagRunner, Beam's DirectRunner and SQLite MLMD.

    python local_runner.py                       # default preset on generated sample data, ~5 min on 2 CPU cores
    python local_runner.py --preset tutorial --data_dir ~/tensorflow_datasets
    python local_runner.py --source_dir ../shared/data/oxford-pets-real --epochs 20   # real photos, offline
    python local_runner.py --help                # every setting of pipeline/config.py is a flag
    python local_runner.py --when_drift outputs/petseg/monitor/latest.json   # only if the monitor warrants it

Outputs go under --output_dir (default ./outputs): `<name>/pipeline_root/` (artifacts),
`<name>/metadata.db` (MLMD), `<name>/serving_model/<version>/` (pushed, blessed models),
`<name>/runs/<run id>/` (report.md with pictures, evaluation summary), `<name>/logs/` (the full log of each
run), `sample_data/` (generated data). Caching is on: an unchanged rerun reuses every component's outputs.
The console shows a line per component and per epoch; `--verbose` shows the full TensorFlow/Beam stream.
"""

import os

os.environ['TF_USE_LEGACY_KERAS'] = '1'  # TFT 1.16 and TFMA 0.47 need Keras 2; must precede TensorFlow's import.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')  # C++ INFO lines (oneDNN, cuda stubs) say nothing to a user

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from typing import Dict, Optional, Sequence, Tuple  # noqa: E402

# google-api-core warns once per Cloud client module that Python 3.10 is old; TFX 1.16 needs 3.10.
warnings.filterwarnings('ignore', message='You are using a non-supported Python version')

# Light imports only: TensorFlow, TFX and Beam are imported inside the run's console, so that what they
# print while loading goes to the log file rather than the terminal.
from modules import cli  # noqa: E402
from pipeline import flags  # noqa: E402
from pipeline.local import console as console_lib, run_lock  # noqa: E402
from pipeline.local.memory import PeakMemory  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output_dir', default='outputs', help='root of all outputs (default: ./outputs)')
    parser.add_argument('--direct_num_workers', type=cli.positive_int, default=1,
                        help='Beam DirectRunner workers; >1 runs them as processes (default: 1)')
    parser.add_argument('--no_cache', action='store_true', help='rerun every component even if nothing changed')
    parser.add_argument('--verbose', action='store_true', help='show the full TensorFlow/TFX/Beam log on the console')
    parser.add_argument('--when_drift', metavar='VERDICT',
                        help="run only when this monitor verdict (python -m pipeline.monitor's latest.json) warrants "
                             'retraining; otherwise say why not and exit 0')
    parser.add_argument('--wait', type=float, default=0.0, metavar='SECONDS',
                        help='when another run holds the same output directory, wait this long for it '
                             '(default: 0, refuse at once)')
    flags.add_config_flags(parser, default_preset='default')
    return parser


def config_from_args(argv: Optional[Sequence[str]] = None):
    """(parsed flags, validated config); invalid flags exit with status 2 and validate()'s message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.wait < 0:
        parser.error(f'--wait must be >= 0, got {args.wait}')
    return args, flags.config_from_args(args, parser)


def _print_outputs(console: console_lib.RunConsole, config: PipelineConfig, run_dir: str,
                   peak_rss_mb: Dict[str, float]) -> None:
    from pipeline.local import report, run_summary
    summary = run_summary.read_run_summary(os.path.join(run_dir, 'metadata.db'), config.name)
    summary.peak_rss_mb = peak_rss_mb
    report_dir = os.path.join(run_dir, 'runs', summary.run_id.replace(':', '-'))
    summary_path = run_summary.write_summary(summary, report_dir)
    report_path = report.write_run_report(summary, config, report_dir)
    console.print(f'\n{run_summary.format_table(summary)}\n')
    console.print(f'Run report:         {report_path}')
    console.print(f'Evaluation summary: {summary_path}')
    console.print(f'Artifacts:          {os.path.join(run_dir, "pipeline_root")}')
    console.print(f'Metadata:           {os.path.join(run_dir, "metadata.db")}')
    console.print(f'Serving models:     {os.path.join(run_dir, "serving_model")}/<version>/')
    console.print(f'Full log:           {console.log_path}')


def run(config: PipelineConfig, output_dir: str, *, direct_num_workers: int = 1, enable_cache: bool = True,
        verbose: bool = False, wait_s: float = 0.0) -> int:
    """Runs the pipeline once and prints what it did; returns the exit status (0 ok, 1 failed).

    Args:
      config: validated settings.
      output_dir: root of the outputs.
      direct_num_workers: Beam DirectRunner workers.
      enable_cache: reuse outputs of unchanged components.
      verbose: full log on the console.
      wait_s: how long to wait for another run of the same output directory to finish.

    Returns:
      The process exit status.
    """
    output_dir = os.path.abspath(output_dir)
    run_dir = os.path.join(output_dir, config.name)
    metadata_path = os.path.join(run_dir, 'metadata.db')
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    log_path = os.path.join(run_dir, 'logs', f'{stamp}-{os.getpid()}.log')
    try:
        lock = run_lock.acquire(run_dir, wait_s)
    except run_lock.RunLockedError as e:
        print(f'Not started: {e}', file=sys.stderr)
        return 1
    def describe(node: str):
        from pipeline.local import run_summary
        return run_summary.describe_node(metadata_path, config.name, node)

    console = console_lib.RunConsole(log_path, describe, verbose=verbose, peak_mb=lambda node: memory.peak_mb(node))
    memory = PeakMemory(lambda: console.current)
    with lock, console, memory:
        console.print(f'petseg: pipeline {config.name!r}, log {log_path}')
        try:
            from tfx import v1 as tfx
            from pipeline import platform
            from pipeline.data_source import prepare_data
            from pipeline.pipeline import create_pipeline
            from pipeline.local import baseline
            config = prepare_data(config, os.path.join(output_dir, 'sample_data'))
            baseline.check_comparable(config, metadata_path)
            pipeline = create_pipeline(
                config,
                pipeline_root=os.path.join(run_dir, 'pipeline_root'),
                serving_dir=os.path.join(run_dir, 'serving_model'),
                metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
                beam_pipeline_args=platform.direct_beam_args(direct_num_workers),
                enable_cache=enable_cache,
            )
            tfx.orchestration.LocalDagRunner().run(pipeline)
        except Exception as e:  # any failure: name the component and the reason, point at the log
            console.failed(e)
            return 1
        _print_outputs(console, config, run_dir, memory.summary_mb())
    return 0


def retraining_warranted(verdict_path: str) -> Tuple[bool, str]:
    """(whether the monitor's verdict warrants retraining, its reasons in one line).

    Raises:
      ValueError: the file is missing or is not a monitor verdict.
    """
    try:
        with open(verdict_path) as f:
            verdict = json.load(f)
        return bool(verdict['retrain']), '; '.join(verdict['reasons'])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f'--when_drift {verdict_path}: not a monitor verdict ({type(e).__name__}: {e})') from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, config = config_from_args(argv)
    if args.when_drift:
        try:
            warranted, reasons = retraining_warranted(args.when_drift)
        except ValueError as e:
            build_parser().error(str(e))
        if not warranted:
            print(f'Not run: the monitor does not warrant retraining ({reasons})')
            return 0
        print(f'Retraining: {reasons}')
    return run(config, args.output_dir, direct_num_workers=args.direct_num_workers, enable_cache=not args.no_cache,
               verbose=args.verbose, wait_s=args.wait)


if __name__ == '__main__':
    sys.exit(main())
