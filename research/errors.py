"""The error type for mistakes in user input (flags, configs, data, workdirs)."""


class UserInputError(ValueError):
  """A flag, config value, data set or workdir that cannot be used.

  Entry points print its message as one line and exit non-zero, without a
  traceback: the message itself must say what was wrong and what is allowed.
  """
