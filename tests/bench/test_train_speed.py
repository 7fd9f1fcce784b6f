"""bench/train_speed.py: its command line (the step loop is `bench/timing.py`'s, tested there)."""

import pytest

from bench import train_speed


def test_a_block_below_one_is_refused():
    with pytest.raises(SystemExit):
        train_speed.main(['--block', '0'])
