"""End-to-end training programs, one per experiment; entry points call these."""
