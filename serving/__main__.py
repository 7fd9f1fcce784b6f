"""Serves pushed petseg models over TF Serving's REST API, with a web page to look at the masks.

    python -m serving --model_root outputs/petseg/serving_model            # http://127.0.0.1:8501/
    python -m serving --model_root outputs/petseg/serving_model --port 8601 --max_concurrency 4
    python -m serving --model_root outputs/petseg/serving_model --grpc_port 8500   # also gRPC PredictionService

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
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    if args.poll_s <= 0 or args.max_body_mb <= 0:
        build_parser().error('--poll_s and --max_body_mb must be > 0')
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    repository = ModelRepository(args.model_root, keep=args.keep_versions)
    repository.refresh()
    if not repository.versions():
        logging.warning('No complete version under %s yet; serving 404 until one is pushed.', args.model_root)
    server = Server(repository, args.model_name, max_concurrency=args.max_concurrency,
                    max_instances=args.max_instances, max_body_bytes=int(args.max_body_mb * 1024 * 1024))
    # Held until the process ends: a gRPC server that is garbage-collected stops serving.
    grpc_server = (grpc_service.start(repository, args.model_name, args.host, args.grpc_port, args.max_concurrency)
                   if args.grpc_port else None)
    print(f'Serving {args.model_name} versions {repository.versions()} from {args.model_root} '
          f'on http://{args.host}:{args.port}/' + (f' and gRPC {args.host}:{args.grpc_port}' if args.grpc_port else ''),
          flush=True)
    web.run_app(make_app(server, args.poll_s), host=args.host, port=args.port, print=None)
    if grpc_server:
        grpc_server.stop(grace=5)


if __name__ == '__main__':
    main()
