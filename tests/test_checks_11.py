"""The check cell of notebook 11 passes a right p99 and explains typical wrong ones."""

import math

import pytest

from workshop.checks import CheckFailed, nb11


def right(samples):
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * 0.99
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def nearest_rank(samples):
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)]


def unsorted(samples):
    rank = (len(samples) - 1) * 0.99
    low = math.floor(rank)
    high = min(low + 1, len(samples) - 1)
    return samples[low] + (samples[high] - samples[low]) * (rank - low)


def in_place(samples):
    samples.sort()
    return right(samples)


def test_right_answer_passes(capsys):
    nb11.check_p99(right)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(("wrong", "message"), [
    (max, "the maximum"),
    (nearest_rank, "nearest-rank"),
    (unsorted, "arrival order"),
    (in_place, "changed the list"),
    (lambda s: None, "not a number"),
])
def test_wrong_answers_are_explained(capsys, wrong, message):
    with pytest.raises(CheckFailed, match=message):
        nb11.check_p99(wrong)
    assert "Hint:" in capsys.readouterr().out


def test_unfinished_exercise_raises_not_implemented():
    def stub(samples):
        raise NotImplementedError("Exercise 11.1: compute p99 with linear interpolation")

    with pytest.raises(NotImplementedError):
        nb11.check_p99(stub)
