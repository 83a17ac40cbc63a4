from tests.lab.fixtures import lab, shared_lab  # noqa: F401
