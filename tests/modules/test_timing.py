"""modules/timing.py: the calls are timed in turn, after untimed warm-up rounds."""

import pytest

from modules import timing


def test_calls_are_timed_in_turn_after_the_warmup():
    order = []
    seconds = timing.seconds_in_turn({'a': lambda: order.append('a'), 'b': lambda: order.append('b')},
                                     rounds=3, warmup=1)
    assert order == ['a', 'b'] * 4
    assert [len(seconds['a']), len(seconds['b'])] == [3, 3] and min(seconds['a'] + seconds['b']) >= 0


@pytest.mark.parametrize('count, block, order', [
    (2, 1, 'abab'),             # one call each in turn (the default)
    (4, 2, 'aabbaabb'),
    (5, 2, 'aabbaabbab'),       # the last turn takes what is left
    (3, 8, 'aaabbb'),           # a block longer than the count: each name's calls in one go
])
def test_each_name_is_called_block_times_per_turn_until_it_has_been_called_count_times(count, block, order):
    assert ''.join(timing.turns(['a', 'b'], count, block)) == order


def test_calls_are_timed_block_by_block_after_one_warmup_call_each():
    order = []
    seconds = timing.seconds_in_turn({'a': lambda: order.append('a'), 'b': lambda: order.append('b')},
                                     rounds=5, warmup=1, block=2)
    assert ''.join(order) == 'ab' + 'aabbaabbab'
    assert [len(seconds['a']), len(seconds['b'])] == [5, 5]
