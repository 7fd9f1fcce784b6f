"""Serves pushed petseg models over TF Serving's REST API, with a web page to look at the masks.

    python -m serving --model_root outputs/petseg/serving_model            # http://127.0.0.1:8501/
    python -m serving --model_root outputs/petseg/serving_model --port 8601 --max_concurrency 4
    python -m serving --model_root outputs/petseg/serving_model --grpc_port 8500   # also gRPC PredictionService
    python -m serving --model_root outputs/petseg/serving_model --log_dir request_log --log_sample_rate 0.1 \
        --monitor_verdict outputs/petseg/monitor/latest.json     # watched: see python -m pipeline.monitor

It serves the newest complete numbered version under --model_root and picks up new pushes without a
restart (polling, as TF Serving does); older loaded versions stay addressable under /versions/<v>.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')  # the SavedModel holds a TFT layer built with Keras 2
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import argparse  # noqa: E402
import logging  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

from aiohttp import web  # noqa: E402

from modules import cli  # noqa: E402
from modules.request_log import RequestLog  # noqa: E402
from serving import grpc_service  # noqa: E402
from serving.models import ModelRepository  # noqa: E402
from serving.rest import Server, make_app  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model_root', required=True, help='serving root with numbered versions (what the Pusher writes)')
    parser.add_argument('--model_name', default='petseg', help='the name in /v1/models/<name> (default: petseg)')
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on (default: 127.0.0.1)')
    parser.add_argument('--port', type=cli.positive_int, default=8501, help='REST port (default: 8501, TF Serving\'s)')
    parser.add_argument('--grpc_port', type=cli.positive_int,
                        help="also serve TF Serving's gRPC PredictionService on this port (default: off; TF Serving uses 8500)")
    parser.add_argument('--poll_s', type=float, default=2.0, help='seconds between looks for new versions (default: 2)')
    parser.add_argument('--keep_versions', type=cli.positive_int, default=3,
                        help='newest versions kept loaded and addressable (default: 3)')
    parser.add_argument('--max_concurrency', type=cli.positive_int, default=2,
                        help='model calls at once; more requests wait their turn (default: 2)')
    parser.add_argument('--max_instances', type=cli.positive_int, default=32,
                        help='instances one request may hold (default: 32)')
    parser.add_argument('--max_body_mb', type=float, default=32.0, help='largest request body in MB (default: 32)')
    parser.add_argument('--log_dir', help='write a sample of the request images\' features here, for the monitor '
                                          '(python -m pipeline.monitor); off by default')
    parser.add_argument('--log_sample_rate', type=float, default=0.1,
                        help='share of request images logged, in (0, 1] (default: 0.1)')
    parser.add_argument('--log_images', action='store_true',
                        help='log the sampled images\' bytes too (to label them and add them to the data)')
    parser.add_argument('--log_max_mb', type=float, default=1024.0,
                        help='the log\'s largest total size; the oldest files go first (default: 1024)')
    parser.add_argument('--monitor_verdict', help='the monitor\'s latest.json, shown on the page')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    if args.poll_s <= 0 or args.max_body_mb <= 0 or args.log_max_mb <= 0:
        build_parser().error('--poll_s, --max_body_mb and --log_max_mb must be > 0')
    if not 0 < args.log_sample_rate <= 1:
        build_parser().error(f'--log_sample_rate must be in (0, 1], got {args.log_sample_rate}')
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    repository = ModelRepository(args.model_root, keep=args.keep_versions)
    repository.refresh()
    if not repository.versions():
        logging.warning('No complete version under %s yet; serving 404 until one is pushed.', args.model_root)
    request_log = RequestLog(args.log_dir, args.log_sample_rate, args.log_images,
                             max_total_bytes=int(args.log_max_mb * 1024 * 1024)) if args.log_dir else None
    server = Server(repository, args.model_name, max_concurrency=args.max_concurrency,
                    max_instances=args.max_instances, max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                    request_log=request_log, monitor_verdict=args.monitor_verdict)
    # Held until the process ends: a gRPC server that is garbage-collected stops serving.
    grpc_server = (grpc_service.start(repository, args.model_name, args.host, args.grpc_port, args.max_concurrency)
                   if args.grpc_port else None)
    print(f'Serving {args.model_name} versions {repository.versions()} from {args.model_root} '
          f'on http://{args.host}:{args.port}/' + (f' and gRPC {args.host}:{args.grpc_port}' if args.grpc_port else ''),
          flush=True)
    web.run_app(make_app(server, args.poll_s), host=args.host, port=args.port, print=None)
    if grpc_server:
        grpc_server.stop(grace=5)
    if request_log:
        request_log.flush()


if __name__ == '__main__':
    main()
