"""Helpers shared by the tests; nothing in this package is a test.

Test modules import them as ``support.<module>``: ``tests/`` is on ``sys.path`` (pytest's
prepend import mode puts it there; ``conftest.py`` makes sure of it). No test imports
another test module or ``conftest.py``.

- ``waiting``: waiting on a condition, with ceilings generous enough for a loaded machine
- ``fixtures``: real SQLite files, certificates, pitwatch.yml files, collector readings
- ``servers``: a real HTTP(S) server in this process, a real redis-server
- ``toy_platform``: a small real platform (releases, app, database) for the remediation
  tests; ``platform_app.py`` and ``platform_ctl.py`` are the scripts it runs (the name
  keeps it from shadowing the standard library's ``platform`` in those scripts)
- ``rendered``: configs written by ``pitwatch render`` for the compose stack and for tests
- ``foreign_app``: a trading journal pitwatch did not write (``journal_app.py``), behind
  a proxy that sets its security headers
- ``remediation``: Alertmanager webhook bodies, a real ``pitwatch remediator``, its journal
"""
