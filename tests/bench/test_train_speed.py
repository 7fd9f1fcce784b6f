"""bench/train_speed.py: the order in which the sides take their timed steps."""

import pytest

from bench import train_speed


@pytest.mark.parametrize('steps, block, order', [
    (2, 1, 'abab'),             # one step each in turn (the default)
    (4, 2, 'aabbaabb'),
    (5, 2, 'aabbaabbab'),       # the last turn takes what is left
    (3, 8, 'aaabbb'),           # a block longer than the steps: each side's steps in one go
])
def test_each_side_takes_block_steps_per_turn_until_it_has_taken_steps(steps, block, order):
    assert ''.join(train_speed.turns(['a', 'b'], steps, block)) == order


def test_a_block_below_one_is_refused():
    with pytest.raises(SystemExit):
        train_speed.main(['--block', '0'])
