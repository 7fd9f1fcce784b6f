"""Runs the petseg pipeline on this machine with LocalDagRunner, Beam's DirectRunner and SQLite MLMD.

    python local_runner.py                       # default preset on generated sample data, ~5 min on 2 CPU cores
    python local_runner.py --preset tutorial --data_dir ~/tensorflow_datasets
    python local_runner.py --source_dir /data/pets   # images.tar.gz + annotations.tar.gz, offline

Outputs go under --output_dir (default ./outputs): `<name>/pipeline_root/` (artifacts),
`<name>/metadata.db` (MLMD), `<name>/serving_model/<version>/` (pushed, blessed models),
`<name>/runs/<run id>/` (report.md with pictures, evaluation summary), `sample_data/` (generated data). Caching is on: an
unchanged rerun reuses every component's outputs.
"""

import os

os.environ['TF_USE_LEGACY_KERAS'] = '1'  # TFT 1.16 and TFMA 0.47 need Keras 2; must precede TensorFlow's import.

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import warnings  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

# google-api-core warns once per Cloud client module that Python 3.10 is old; TFX 1.16 needs 3.10.
warnings.filterwarnings('ignore', message='You are using a non-supported Python version')

from tfx import v1 as tfx  # noqa: E402

from pipeline import config as config_lib, platform, report, run_summary  # noqa: E402
from pipeline.data_source import materialize_sample_data  # noqa: E402
from pipeline.pipeline import create_pipeline  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', default='default', choices=sorted(config_lib.PRESETS),
                        help='settings to start from (default: default, generated sample data)')
    parser.add_argument('--output_dir', default='outputs', help='root of all outputs (default: ./outputs)')
    parser.add_argument('--dataset', help='TFDS dataset name[:version], e.g. oxford_iiit_pet:4.*.*')
    parser.add_argument('--data_dir', help='TFDS data dir holding the prepared dataset')
    parser.add_argument('--source_dir', help='Oxford-IIIT Pet images.tar.gz + annotations.tar.gz, or their folders')
    parser.add_argument('--epochs', type=int, help="training epochs (default: the preset's)")
    parser.add_argument('--direct_num_workers', type=int, default=1,
                        help='Beam DirectRunner workers; >1 runs them as processes (default: 1)')
    parser.add_argument('--no_cache', action='store_true', help='rerun every component even if nothing changed')
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> config_lib.PipelineConfig:
    """The preset with the flags that were given applied on top."""
    config = config_lib.preset(args.preset)
    data_overrides = {k: getattr(args, k) for k in ('dataset', 'data_dir', 'source_dir') if getattr(args, k)}
    for key in ('data_dir', 'source_dir'):
        # Paths are part of ExampleGen's cache key: `pets` and `./pets` and `/abs/pets` must be one source.
        if key in data_overrides and '://' not in data_overrides[key]:
            data_overrides[key] = os.path.abspath(os.path.expanduser(data_overrides[key]))
    if data_overrides:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, **data_overrides))
    if args.epochs:
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, epochs=args.epochs))
    return config.validate()


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    output_dir = os.path.abspath(args.output_dir)
    config = materialize_sample_data(config_from_args(args), os.path.join(output_dir, 'sample_data'))
    run_dir = os.path.join(output_dir, config.name)
    pipeline = create_pipeline(
        config,
        pipeline_root=os.path.join(run_dir, 'pipeline_root'),
        serving_dir=os.path.join(run_dir, 'serving_model'),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(run_dir, 'metadata.db')),
        beam_pipeline_args=platform.local_beam_args(args.direct_num_workers),
        enable_cache=not args.no_cache,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    summary = run_summary.read_run_summary(os.path.join(run_dir, 'metadata.db'), config.name)
    report_dir = os.path.join(run_dir, 'runs', summary.run_id.replace(':', '-'))
    summary_path = run_summary.write_summary(summary, report_dir)
    report_path = report.write_run_report(summary, config, report_dir)
    print(f'\n{run_summary.format_table(summary)}\n')
    print(f'Run report:         {report_path}')
    print(f'Evaluation summary: {summary_path}')
    print(f'Artifacts:          {os.path.join(run_dir, "pipeline_root")}')
    print(f'Metadata:           {os.path.join(run_dir, "metadata.db")}')
    print(f'Serving models:     {os.path.join(run_dir, "serving_model")}/<version>/')


if __name__ == '__main__':
    main()
