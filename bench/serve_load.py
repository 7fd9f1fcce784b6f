"""Load on the local server: C concurrent clients x N requests of one 500x375 JPEG; errors and latency.

    .venv/bin/python -m bench.serve_load --model_root outputs/petseg/serving_model      # 4 x 500, ~1-2 min

Starts `python -m serving` on a loopback port over the pushed models, waits for it, then each client sends
its requests one after another on its own keep-alive connection. Writes
`bench/results/serving-load-<date>.{json,md}` with the CPU kind. Not a test: nothing here asserts a speed.
"""

import argparse
import base64
import concurrent.futures
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from bench import results_file
from bench.results_file import RESULTS_DIR, ROOT
from components.serving_check import requests
from modules import cli


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _client(port: int, body: bytes, count: int) -> List[float]:
    """Seconds per request; a failed request counts as NaN."""
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        try:
            connection.request('POST', '/v1/models/petseg:predict', body, {'Content-Type': 'application/json'})
            response = connection.getresponse()
            ok = response.status == 200 and b'"predictions"' in response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
            ok = False
        seconds.append(time.perf_counter() - start if ok else float('nan'))
    connection.close()
    return seconds


def measure(port: int, clients: int, requests_per_client: int, signature: str) -> Dict:
    body = json.dumps({'signature_name': signature,
                       'instances': [{'image_bytes': {'b64': base64.b64encode(requests.typical_jpeg()).decode()}}]})
    for _ in range(5):  # warm-up
        _client(port, body.encode(), 1)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: _client(port, body.encode(), requests_per_client), range(clients)))
    wall = time.perf_counter() - start
    seconds = np.asarray([s for client in results for s in client])
    good = seconds[~np.isnan(seconds)]
    return {'signature': signature, 'clients': clients, 'requests': int(seconds.size),
            'errors': int(np.isnan(seconds).sum()), 'wall_s': round(wall, 1),
            'requests_per_s': round(good.size / wall, 1),
            'p50_ms': round(1000 * float(np.percentile(good, 50)), 1) if good.size else None,
            'p99_ms': round(1000 * float(np.percentile(good, 99)), 1) if good.size else None}


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model_root', default=os.path.join(ROOT, 'outputs', 'petseg', 'serving_model'),
                        help='serving root with pushed versions (default: outputs/petseg/serving_model)')
    parser.add_argument('--clients', type=cli.positive_int, default=4, help='concurrent clients (default 4)')
    parser.add_argument('--requests', type=cli.positive_int, default=500, help='requests per client (default 500)')
    parser.add_argument('--max_concurrency', type=cli.positive_int, default=2,
                        help="the server's model calls at once (default 2, this machine's cores)")
    parser.add_argument('--results_dir', default=RESULTS_DIR, help='where results go (default bench/results)')
    args = parser.parse_args(argv)
    port = _free_port()
    server = subprocess.Popen([sys.executable, '-m', 'serving', '--model_root', args.model_root, '--port', str(port),
                               '--max_concurrency', str(args.max_concurrency)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                connection = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
                connection.request('GET', '/v1/models/petseg')
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f'the server did not come up on port {port} over {args.model_root}')
            time.sleep(0.5)
        runs = [measure(port, args.clients, args.requests, signature)
                for signature in ('serving_default', 'serving_full_size')]
    finally:
        server.terminate()
        server.wait(30)
    results = {**results_file.header('bench.serve_load', argv), 'server_max_concurrency': args.max_concurrency,
               'runs': runs}
    lines = [f'# Local server load, {results["date"]}', '', f'Machine: {results["machine"]}. '
             f'Command: `{results["command"]}`; server --max_concurrency {args.max_concurrency}.', '',
             '| signature | clients x requests | errors | requests/s | p50 ms | p99 ms |', '|---|---|---|---|---|---|']
    lines += [f'| {r["signature"]} | {r["clients"]} x {r["requests"] // r["clients"]} | {r["errors"]} | '
              f'{r["requests_per_s"]} | {r["p50_ms"]} | {r["p99_ms"]} |' for r in runs]
    results_file.write(results, args.results_dir, '\n'.join(lines) + '\n', name='serving-load')
    return results


if __name__ == '__main__':
    main()
