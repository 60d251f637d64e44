"""The suite's xdist groups hold: scripts/test.sh runs pytest-xdist with --dist
loadgroup, so that the tests of one `xdist_group` share a worker and their session
fixtures (multi-device and multi-process programs, minutes each) run once."""

import pytest

pytestmark = pytest.mark.xdist_group('test_xdist_groups')


def test_grouped_tests_are_sent_to_one_worker_as_a_group(request):
  if not getattr(request.config.option, 'loadgroup', False):
    pytest.skip('runs under pytest-xdist --dist loadgroup (scripts/test.sh)')
  # pytest-xdist's workers mark a grouped test's id with its group; the controller
  # schedules by that mark, and without it spreads the group's tests over the workers.
  assert request.node.nodeid.endswith('@test_xdist_groups'), (
    f'{request.node.nodeid}: pytest-xdist did not group this test; is pytest within '
    "setup.cfg's range?"
  )
