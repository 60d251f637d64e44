"""The exceptions a run can end with, shared by the library and the entry points."""


class UserInputError(ValueError):
  """A flag, config value, data set or workdir that cannot be used.

  Entry points print its message as one line and exit non-zero, without a
  traceback: the message itself must say what was wrong and what is allowed.
  """


class NonFiniteLossError(FloatingPointError):
  """The training loss or gradient became NaN or infinite (the message names the step)."""


class Preempted(Exception):
  """Training stopped on request (SIGTERM/SIGINT/time budget); a checkpoint was written."""

  def __init__(self, step: int):
    super().__init__(
      f'stopped at step {step} on request; a checkpoint was saved: rerun with --resume to continue'
    )
    self.step = step
