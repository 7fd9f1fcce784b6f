"""The benchmarks' results files: a header naming the machine (CPU kind) and command, JSON and Markdown."""

import datetime
import json
import os
import platform
import sys
from typing import Dict, Optional, Sequence

from modules import cpu as cpu_hardware

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, 'bench', 'results')


def cpu_kind() -> Dict[str, object]:
    """The processor's model name and its bfloat16 hardware as oneDNN uses it (speed differs a lot between kinds);
    with `ONEDNN_MAX_CPU_ISA` set, the cap too, and the hardware as capped."""
    info = {'model_name': platform.processor() or platform.machine()}
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f if line.startswith('model name')]
    except OSError:
        names = []
    cpu_flags = cpu_hardware.flags()
    info.update(model_name=names[0] if names else info['model_name'], amx_bf16='amx_bf16' in cpu_flags,
                avx512_bf16='avx512_bf16' in cpu_flags)
    cap = cpu_hardware.isa_cap()
    if cap:
        info['onednn_max_cpu_isa'] = cap
    return info


def header(module: str, argv: Optional[Sequence[str]]) -> Dict:
    """date (UTC), machine (cores and CPU kind) and the command that produced a result."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {'date': now.isoformat(timespec='seconds'), 'machine': {'cpus': os.cpu_count(), 'cpu': cpu_kind()},
            'command': ' '.join([f'python -m {module}', *(sys.argv[1:] if argv is None else argv)])}


def cpu_tag(cpu: Dict[str, object]) -> str:
    """A file-name word for the CPU's bfloat16 hardware, the kinds whose figures must not be mixed; a kind
    emulated by capping oneDNN's instructions (`modules.cpu`) is its own kind, `-capped`."""
    kind = 'amx' if cpu.get('amx_bf16') else 'avx512-bf16' if cpu.get('avx512_bf16') else 'no-bf16'
    return f'{kind}-capped' if cpu.get('onednn_max_cpu_isa') else kind


def _recorded_cpu(json_path: str) -> Optional[Dict[str, object]]:
    try:
        with open(json_path) as f:
            return json.load(f).get('machine', {}).get('cpu')
    except (OSError, ValueError, AttributeError):
        return None


def write(results: Dict, results_dir: str, text: str, name: Optional[str] = None) -> str:
    """Writes `[<name>-]<date>.json` and `.md` under `results_dir` (the date from `results`' header), prints
    the Markdown; returns the JSON path.

    A same-day result from another CPU kind is kept: the new files then get the kind's tag
    (`<name>-<date>-amx.json`), since figures of two kinds are never comparable and one must not replace the
    other. A rerun on the same kind replaces that day's files (git keeps the earlier ones)."""
    stem = os.path.join(results_dir, f'{name}-{results["date"][:10]}' if name else results['date'][:10])
    cpu = results.get('machine', {}).get('cpu', {})
    recorded = _recorded_cpu(stem + '.json')
    if recorded is not None and cpu_tag(recorded) != cpu_tag(cpu):
        stem = f'{stem}-{cpu_tag(cpu)}'
    os.makedirs(results_dir, exist_ok=True)
    with open(stem + '.json', 'w') as f:
        json.dump(results, f, indent=1, default=float)
    with open(stem + '.md', 'w') as f:
        f.write(text)
    print(text)
    return stem + '.json'
