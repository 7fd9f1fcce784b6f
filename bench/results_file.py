"""The benchmarks' results files: a header naming the machine (CPU kind) and command, JSON and Markdown."""

import datetime
import json
import os
import platform
import sys
from typing import Dict, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, 'bench', 'results')


def cpu_kind() -> Dict[str, object]:
    """The processor's model name and its bfloat16 hardware: speed differs a lot between kinds."""
    info = {'model_name': platform.processor() or platform.machine(), 'amx_bf16': False, 'avx512_bf16': False}
    try:
        with open('/proc/cpuinfo') as f:
            lines = f.read().splitlines()
    except OSError:
        return info
    names = [line.split(':', 1)[1].strip() for line in lines if line.startswith('model name')]
    cpu_flags = next((line.split(':', 1)[1].split() for line in lines if line.startswith('flags')), [])
    info.update(model_name=names[0] if names else info['model_name'], amx_bf16='amx_bf16' in cpu_flags,
                avx512_bf16='avx512_bf16' in cpu_flags)
    return info


def header(module: str, argv: Optional[Sequence[str]]) -> Dict:
    """date (UTC), machine (cores and CPU kind) and the command that produced a result."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {'date': now.isoformat(timespec='seconds'), 'machine': {'cpus': os.cpu_count(), 'cpu': cpu_kind()},
            'command': ' '.join([f'python -m {module}', *(sys.argv[1:] if argv is None else argv)])}


def write(results: Dict, results_dir: str, text: str, name: Optional[str] = None) -> str:
    """Writes `[<name>-]<date>.json` and `.md` under `results_dir` (the date from `results`' header), prints
    the Markdown; returns the JSON path."""
    stem = os.path.join(results_dir, f'{name}-{results["date"][:10]}' if name else results['date'][:10])
    os.makedirs(results_dir, exist_ok=True)
    with open(stem + '.json', 'w') as f:
        json.dump(results, f, indent=1, default=float)
    with open(stem + '.md', 'w') as f:
        f.write(text)
    print(text)
    return stem + '.json'
