"""The CPU's bfloat16 hardware as oneDNN will use it: the flags of /proc/cpuinfo, less what
`ONEDNN_MAX_CPU_ISA` forbids.

oneDNN (TensorFlow's CPU kernels) reads that variable once and never uses instructions above the level it
names, so with `ONEDNN_MAX_CPU_ISA=AVX2` an AVX512-BF16 or AMX machine computes like one without bfloat16
(bfloat16 emulated): the precision choice (`modules/precision.py`) and the benchmarks' CPU kind
(`bench/results_file.py`) must see that machine, not the flags. Light on purpose: no TensorFlow import.
"""

import os
from typing import List, Optional

ISA_VARIABLES = ('ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA')
# Caps (oneDNN's names) under which the AVX512-BF16 instructions stay usable; AMX needs a cap naming AMX.
_BFLOAT16_CAPS = ('AVX512_CORE_BF16', 'AVX512_CORE_FP16', 'AVX10_1_512')


def isa_cap() -> Optional[str]:
    """The highest instruction set oneDNN may use, as set in the environment; None when not capped."""
    for name in ISA_VARIABLES:
        value = os.environ.get(name, '').strip().upper()
        if value and value not in ('ALL', 'DEFAULT'):
            return value
    return None


def flags(cpuinfo: str = '/proc/cpuinfo') -> List[str]:
    """The CPU's feature flags, without the bfloat16 ones `isa_cap` forbids ([] where cpuinfo cannot be read)."""
    try:
        with open(cpuinfo) as f:
            found = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')), [])
    except OSError:
        return []
    cap = isa_cap()
    if cap is None:
        return found
    amx = 'AMX' in cap
    return [flag for flag in found
            if not (flag.startswith('amx') and not amx)
            and not (flag == 'avx512_bf16' and not amx and cap not in _BFLOAT16_CAPS)]
