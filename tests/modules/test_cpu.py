"""modules/cpu.py: the bfloat16 hardware as oneDNN will use it, `ONEDNN_MAX_CPU_ISA` included."""

import pytest

from modules import cpu, precision

XEON = 'processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n'


@pytest.fixture
def cpuinfo(tmp_path):
    path = tmp_path / 'cpuinfo'
    path.write_text(XEON)
    return str(path)


@pytest.mark.parametrize('cap, kept', [
    (None, {'amx_bf16', 'amx_tile', 'avx512_bf16'}),
    ('all', {'amx_bf16', 'amx_tile', 'avx512_bf16'}),
    ('AVX512_CORE_AMX', {'amx_bf16', 'amx_tile', 'avx512_bf16'}),
    ('avx512_core_bf16', {'avx512_bf16'}),          # AVX512-BF16 without tiles: a Zen 4
    ('AVX512_CORE_VNNI', set()),
    ('AVX2', set()),                                 # a machine without bfloat16 instructions, as oneDNN sees it
])
def test_the_cap_takes_away_the_instructions_onednn_will_not_use(cpuinfo, monkeypatch, cap, kept):
    monkeypatch.delenv('DNNL_MAX_CPU_ISA', raising=False)
    if cap is None:
        monkeypatch.delenv('ONEDNN_MAX_CPU_ISA', raising=False)
    else:
        monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', cap)
    flags = cpu.flags(cpuinfo)
    assert {'fpu', 'avx2', 'avx512f'} <= set(flags)
    assert {f for f in flags if 'bf16' in f or f.startswith('amx')} == kept
    assert precision.native_bfloat16(flags) is {3: True, 1: None, 0: False}[len(kept)]


def test_an_unreadable_cpuinfo_has_no_flags(tmp_path):
    assert cpu.flags(str(tmp_path / 'missing')) == []
