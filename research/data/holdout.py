"""Held-out splits that hold out examples, never whole strata.

A stratum is a group the test set must not have to itself (an input length, an
operand-length pattern). Each stratum gives the test set a share proportional to
its size (rounded by largest remainders) and keeps a strict majority of its
examples in training, so every stratum present in test is present in training,
and a stratum of one or two examples stays in training whole.
"""

import collections
from typing import Hashable, Sequence

import numpy as np

from research.errors import UserInputError


def test_quotas(sizes: dict[Hashable, int], num_test: int) -> dict[Hashable, int]:
  """Test examples per stratum, summing to `num_test`.

  Args:
    sizes: examples per stratum (each >= 1), in a fixed order (ties follow it).
    num_test: test examples wanted in all.

  Returns:
    {stratum: test examples}: proportional to `sizes`, at most (size - 1) // 2
    each.

  Raises:
    UserInputError: if `num_test` does not fit under those caps.
  """
  caps = {k: (n - 1) // 2 for k, n in sizes.items()}
  if num_test > sum(caps.values()):
    raise UserInputError(
      f'cannot hold out {num_test} test examples while keeping most of every '
      f'stratum (length) in training: at most {sum(caps.values())} of these '
      f'{sum(sizes.values())} examples; lower num_test or raise num_train'
    )
  total = sum(sizes.values())
  exact = {k: num_test * n / total for k, n in sizes.items()}
  quotas = {k: min(int(exact[k]), caps[k]) for k in sizes}
  while (short := num_test - sum(quotas.values())) > 0:
    owed = sorted(
      (k for k in sizes if quotas[k] < caps[k]), key=lambda k: quotas[k] - exact[k]
    )  # Most under-served first.
    for k in owed[:short]:
      quotas[k] += 1
  return quotas


def stratified_split(
  strata: Sequence[Hashable], num_test: int, seed: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
  """Splits examples 0..N-1, whose strata are `strata`, into train and test.

  Args:
    strata: the stratum of each example (N hashable keys).
    num_test: test examples wanted (see `test_quotas` for the rule).
    seed: numpy seed of which examples of a stratum go to test.

  Returns:
    (train, test): int64 index arrays, ascending, disjoint, covering 0..N-1.

  Raises:
    UserInputError: if `num_test` examples cannot be held out under the rule.
  """
  groups = collections.defaultdict(list)
  for i, key in enumerate(strata):
    groups[key].append(i)
  quotas = test_quotas({k: len(v) for k, v in groups.items()}, num_test)
  rng = np.random.default_rng(seed)
  is_test = np.zeros(len(strata), bool)
  for key, members in groups.items():
    is_test[np.asarray(members)[rng.permutation(len(members))[: quotas[key]]]] = True
  return np.flatnonzero(~is_test), np.flatnonzero(is_test)
