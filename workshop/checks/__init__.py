"""The functions behind the exercises' check cells, one module per notebook (nbNN.py).

A check prints what is right, or what is wrong and a hint, then raises ``CheckFailed`` so
that a wrong answer stops "Run all" (and CI) at the check, not three cells later.
A ``NotImplementedError`` from an unfinished exercise passes through untouched.
"""

from ._report import CheckFailed, fail, passed

__all__ = ["CheckFailed", "fail", "passed"]
