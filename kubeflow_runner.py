"""Compiles the petseg pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines, and optionally runs or schedules it.

    # compile only (no credentials, no network; a few seconds):
    python kubeflow_runner.py --pipeline_root gs://BUCKET/petseg --image REGION-docker.pkg.dev/PROJECT/REPO/petseg:TAG \\
        --data_dir gs://BUCKET/tensorflow_datasets --preset tutorial
    # also run it on Vertex AI Pipelines, Beam on Dataflow, training on a Vertex GPU:
    python kubeflow_runner.py ... --project PROJECT --region us-central1 --beam_runner dataflow \\
        --dataflow_temp_location gs://BUCKET/tmp --vertex_training --gpu_type NVIDIA_TESLA_T4 --submit
    # retrain every Monday 03:00 UTC (Vertex pipeline schedule, one run at a time):
    python kubeflow_runner.py ... --project PROJECT --region us-central1 --schedule "0 3 * * 1"
    # also compile the monitoring pipeline (petseg_pipeline_monitor.json) and run it every hour:
    python kubeflow_runner.py ... --monitor_log_dir gs://BUCKET/request_log --monitor_schedule "0 * * * *"

The same `create_pipeline` as `local_runner.py` is compiled (and, with --monitor_log_dir,
`create_monitoring_pipeline` beside it: `python -m pipeline.monitor`'s check as a pipeline step); only paths, image, Beam args and the
Vertex choices in `pipeline/platform.py` differ. User modules and custom components are imported
by dotted path inside the image, which has this package installed (see Dockerfile).
"""

import os

os.environ['TF_USE_LEGACY_KERAS'] = '1'  # TFT 1.16 and TFMA 0.47 need Keras 2; must precede TensorFlow's import.

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import inspect  # noqa: E402
import warnings  # noqa: E402
from typing import List, Optional, Sequence  # noqa: E402

warnings.filterwarnings('ignore', message='You are using a non-supported Python version')

from tfx import v1 as tfx  # noqa: E402

from modules import cli  # noqa: E402
from pipeline import data_source, flags, platform  # noqa: E402
from pipeline import monitor as monitor_cli  # noqa: E402
from pipeline.pipeline import create_monitoring_pipeline, create_pipeline  # noqa: E402

DEFAULT_OUTPUT = 'petseg_pipeline.json'
_DATAFLOW_DEFAULTS = {name: parameter.default for name, parameter in
                      inspect.signature(platform.dataflow_beam_args).parameters.items()}


@dataclasses.dataclass(frozen=True)
class VertexRunRequest:
    """What is sent to Vertex AI Pipelines for a run (--submit) or a schedule (--schedule)."""

    project: str
    region: str
    display_name: str
    template_path: str
    pipeline_root: str
    enable_caching: bool
    service_account: Optional[str] = None
    cron: Optional[str] = None
    max_concurrent_run_count: int = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    out = parser.add_argument_group('compilation')
    out.add_argument('--output', default=DEFAULT_OUTPUT, help=f'pipeline spec JSON to write (default: {DEFAULT_OUTPUT})')
    out.add_argument('--pipeline_root', required=True, help='artifact root, e.g. gs://BUCKET/petseg')
    out.add_argument('--image', required=True, help='pipeline container image built from the Dockerfile')
    out.add_argument('--serving_dir', help='filesystem push destination (default: PIPELINE_ROOT/serving_model)')
    flags.add_config_flags(parser, default_preset='tutorial')
    cloud = parser.add_argument_group('Google Cloud')
    cloud.add_argument('--project', help='GCP project (needed for Dataflow, Vertex training/endpoint, submit, schedule)')
    cloud.add_argument('--region', help='GCP region, e.g. us-central1 (same cases as --project)')
    cloud.add_argument('--beam_runner', choices=('direct', 'dataflow'), default='direct',
                       help='Beam runner of ExampleGen/StatisticsGen/Transform/Evaluator (default: direct, in the pod)')
    cloud.add_argument('--direct_num_workers', type=cli.non_negative_int, default=0,
                       help='DirectRunner worker processes in the pod (default: 0, one per core)')
    cloud.add_argument('--dataflow_temp_location', help='gs:// temp dir for Dataflow')
    cloud.add_argument('--dataflow_machine_type', default=_DATAFLOW_DEFAULTS['machine_type'],
                       help=f"Dataflow worker type (default: {_DATAFLOW_DEFAULTS['machine_type']})")
    cloud.add_argument('--dataflow_max_workers', type=cli.positive_int, default=_DATAFLOW_DEFAULTS['max_num_workers'],
                       help=f"Dataflow autoscaling cap (default: {_DATAFLOW_DEFAULTS['max_num_workers']})")
    cloud.add_argument('--vertex_training', action='store_true', help='run the Trainer as a Vertex AI custom job')
    machine = flags.dataclass_default(platform.VertexOptions, 'training_machine_type')
    cloud.add_argument('--training_machine_type', default=machine, help=f'Vertex training machine (default: {machine})')
    cloud.add_argument('--gpu_type', help='Vertex training accelerator, e.g. NVIDIA_TESLA_T4 (with --vertex_training)')
    cloud.add_argument('--gpu_count', type=cli.positive_int, default=1,
                       help='accelerators per training machine (default: 1)')
    cloud.add_argument('--training_workers', type=cli.non_negative_int, default=0,
                       help='Vertex training workers beside the chief (default: 0); >0 trains with '
                            'MultiWorkerMirroredStrategy, batch_size per replica')
    cloud.add_argument('--endpoint', help='deploy blessed models to this Vertex endpoint instead of --serving_dir')
    watch = parser.add_argument_group('monitoring pipeline (docs/monitoring.md)')
    watch.add_argument('--monitor_log_dir', help="the server's --log_dir (gs://...): also compile the monitoring "
                                                 'pipeline, to OUTPUT with a _monitor suffix')
    watch.add_argument('--monitor_schedule', metavar='CRON',
                       help='create a Vertex schedule for the monitoring pipeline, e.g. "0 * * * *"')
    monitor_cli.add_judgement_flags(watch, prefix='monitor_')
    run = parser.add_argument_group('running (opt-in; needs credentials and network)')
    run.add_argument('--submit', action='store_true', help='run the compiled spec once on Vertex AI Pipelines')
    run.add_argument('--schedule', metavar='CRON', help='create a Vertex pipeline schedule, e.g. "0 3 * * 1"')
    run.add_argument('--service_account', help='service account the runs use')
    run.add_argument('--enable_caching', choices=('auto', 'yes', 'no'), default='auto',
                     help='Vertex step caching; auto = on for --submit, off for --schedule so new data is read')
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the flags and builds the config once (`args.config`); invalid settings exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Paths name the cluster's storage, not this machine's: never made absolute here.
    args.config = flags.config_from_args(args, parser, absolute_paths=False)
    if args.config.data.classes is not None:
        # Read here, at compile time, so the spec carries the classes; the source on the cluster's storage is not
        # searched for a classes.json (compiling needs no credentials), so own data names its file with --classes.
        try:
            args.config = data_source.resolve_classes(args.config)
        except ValueError as e:
            parser.error(str(e))
    args.monitor_settings = monitor_cli.judgement_settings(args, parser, prefix='monitor_')
    if args.monitor_schedule and not args.monitor_log_dir:
        parser.error('--monitor_schedule needs --monitor_log_dir')
    if args.config.serving.validator == 'infra_validator':
        parser.error("--validator infra_validator: TFX 1.16's Kubeflow V2 compiler cannot compile InfraValidator "
                     '("component type is not supported"); use the default serving_check, which runs in the '
                     "pipeline's own image.")
    if args.config.data.sample is not None:
        parser.error(f'preset {args.preset!r} generates sample data locally; on a cluster pass --data_dir or '
                     '--source_dir (e.g. sample data copied to GCS).')
    return args


def _require(args: argparse.Namespace, names: Sequence[str], purpose: str) -> None:
    missing = [f'--{n}' for n in names if not getattr(args, n)]
    if missing:
        raise SystemExit(f'{purpose} needs {", ".join(missing)}. Authenticate with '
                         f'`gcloud auth application-default login` before submitting.')


def vertex_options(args: argparse.Namespace) -> Optional[platform.VertexOptions]:
    """VertexOptions when training or serving leaves the pipeline, else None."""
    if not (args.vertex_training or args.endpoint):
        return None
    _require(args, ('project', 'region'), '--vertex_training / --endpoint')
    return platform.VertexOptions(
        project=args.project, region=args.region, train_on_vertex=args.vertex_training,
        training_machine_type=args.training_machine_type, accelerator_type=args.gpu_type,
        accelerator_count=args.gpu_count if args.gpu_type else 0, worker_count=args.training_workers,
        endpoint_name=args.endpoint)


def beam_args(args: argparse.Namespace) -> List[str]:
    """Beam arguments for the chosen runner."""
    if args.beam_runner == 'direct':
        return platform.direct_beam_args(args.direct_num_workers, setup_file=None)
    _require(args, ('project', 'region', 'dataflow_temp_location'), '--beam_runner dataflow')
    return platform.dataflow_beam_args(args.project, args.region, args.dataflow_temp_location, args.image,
                                       args.dataflow_machine_type, args.dataflow_max_workers)


def _serving_dir(args: argparse.Namespace) -> str:
    return args.serving_dir or os.path.join(args.pipeline_root, 'serving_model')


def _write_spec(pipeline, image: str, path: str) -> str:
    output_dir, output_file = os.path.split(os.path.abspath(path))
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=output_dir, output_filename=output_file)
    runner.run(pipeline, write_out=True)
    return os.path.join(output_dir, output_file)


def compile_pipeline(args: argparse.Namespace) -> str:
    """Writes the pipeline spec JSON; returns its path."""
    pipeline = create_pipeline(
        args.config,
        pipeline_root=args.pipeline_root,
        serving_dir=_serving_dir(args),
        beam_pipeline_args=beam_args(args),
        vertex=vertex_options(args),
        image=args.image,
    )
    return _write_spec(pipeline, args.image, args.output)


def monitor_output(args: argparse.Namespace) -> str:
    """The monitoring pipeline's spec path: OUTPUT with `_monitor` before its extension."""
    stem, extension = os.path.splitext(args.output)
    return f'{stem}_monitor{extension or ".json"}'


def compile_monitoring_pipeline(args: argparse.Namespace) -> str:
    """Writes the monitoring pipeline's spec JSON (`monitor_output`); returns its path."""
    pipeline = create_monitoring_pipeline(
        args.config.name, pipeline_root=args.pipeline_root, log_dir=args.monitor_log_dir,
        serving_dir=_serving_dir(args), **args.monitor_settings)
    return _write_spec(pipeline, args.image, monitor_output(args))


def run_request(args: argparse.Namespace, template_path: str) -> VertexRunRequest:
    """The Vertex AI Pipelines request for --submit or --schedule, built from flags without network."""
    _require(args, ('project', 'region'), '--submit / --schedule')
    caching = {'yes': True, 'no': False, 'auto': not args.schedule}[args.enable_caching]
    return VertexRunRequest(project=args.project, region=args.region, display_name=args.config.name,
                            template_path=template_path, pipeline_root=args.pipeline_root, enable_caching=caching,
                            service_account=args.service_account, cron=args.schedule)


def monitor_schedule_request(args: argparse.Namespace, template_path: str) -> VertexRunRequest:
    """The Vertex schedule of the monitoring pipeline (--monitor_schedule); never cached: each run reads new logs."""
    _require(args, ('project', 'region'), '--monitor_schedule')
    return VertexRunRequest(project=args.project, region=args.region, display_name=f'{args.config.name}-monitor',
                            template_path=template_path, pipeline_root=args.pipeline_root, enable_caching=False,
                            service_account=args.service_account, cron=args.monitor_schedule)


def send(request: VertexRunRequest):
    """Submits a run, or creates a schedule when `request.cron` is set. Needs credentials and network."""
    from google.cloud import aiplatform  # imported here: compiling needs no Cloud client
    aiplatform.init(project=request.project, location=request.region)
    job = aiplatform.PipelineJob(display_name=request.display_name, template_path=request.template_path,
                                 pipeline_root=request.pipeline_root, enable_caching=request.enable_caching)
    if request.cron:
        return job.create_schedule(cron=request.cron, display_name=f'{request.display_name}-retrain',
                                   max_concurrent_run_count=request.max_concurrent_run_count,
                                   service_account=request.service_account)
    job.submit(service_account=request.service_account)
    return job


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    path = compile_pipeline(args)
    print(f'Pipeline spec: {path}')
    if args.monitor_log_dir:
        monitor_path = compile_monitoring_pipeline(args)
        print(f'Monitoring pipeline spec: {monitor_path}')
    if args.submit or args.schedule:
        result = send(run_request(args, path))
        print(f'Vertex AI: {"schedule" if args.schedule else "run"} created: {getattr(result, "resource_name", result)}')
    if args.monitor_schedule:
        result = send(monitor_schedule_request(args, monitor_path))
        print(f'Vertex AI: monitoring schedule created: {getattr(result, "resource_name", result)}')


if __name__ == '__main__':
    main()
