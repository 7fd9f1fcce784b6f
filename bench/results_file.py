"""The results files of the step-level benchmarks: a header naming the machine and command, JSON and Markdown."""

import datetime
import json
import os
import sys
from typing import Dict, Optional, Sequence

from bench.run import cpu_kind


def header(module: str, argv: Optional[Sequence[str]]) -> Dict:
    """time (UTC), machine (cores and CPU kind) and the command that produced a result."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {'time': now.isoformat(timespec='seconds'), 'machine': {'cpus': os.cpu_count(), 'cpu': cpu_kind()},
            'command': ' '.join([f'python -m {module}', *(sys.argv[1:] if argv is None else argv)])}


def write(results: Dict, results_dir: str, name: str, text: str) -> str:
    """Writes `<name>-<date>.json` and `.md` (the date of `results['time']`), prints the Markdown; returns the
    JSON path."""
    os.makedirs(results_dir, exist_ok=True)
    stem = os.path.join(results_dir, f'{name}-{results["time"][:10]}')
    with open(stem + '.json', 'w') as f:
        json.dump(results, f, indent=1)
    with open(stem + '.md', 'w') as f:
        f.write(text)
    print(text)
    return stem + '.json'
