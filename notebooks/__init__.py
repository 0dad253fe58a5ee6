"""Not a module to import: this file makes ``notebooks/conftest.py`` the module ``notebooks.conftest``.

Without it, pytest's ``--doctest-modules`` would import both ``tests/conftest.py`` and
``notebooks/conftest.py`` under the one name ``conftest`` and stop with "import file mismatch".
"""
