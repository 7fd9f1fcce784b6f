"""bench/train_speed.py: its command line (the step loop is `bench/timing.py`'s, tested there)."""

import pytest

from bench import train_speed


def test_a_block_below_one_is_refused():
    with pytest.raises(SystemExit):
        train_speed.main(['--block', '0'])


@pytest.mark.parametrize('block, mixed, name', [
    (1, None, 'train-speed'), (8, None, 'train-speed-block8'),
    (1, False, 'train-speed-float32'), (8, True, 'train-speed-block8-bfloat16'),
])
def test_each_mode_writes_results_of_its_own_name(block, mixed, name):
    assert train_speed.results_name(block, mixed) == name
