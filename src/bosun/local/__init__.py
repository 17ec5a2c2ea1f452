"""The local runtime behind `bosun up`: a Workspace served on this machine as supervised
processes, with state in SQLite so that every terminal sees the same truth.

- ``state.py``: the SQLite (WAL) store under ``$BOSUN_HOME``, and its recovery.
- ``supervisor.py``: the per-workspace supervisor process: starts ``bosun serve``,
  watches ``/health``, restarts a crashed server with backoff, gives up after repeated
  crashes.
- ``runtime.py``: up, ps, down and logs, with liveness checks (a pid that is gone or a
  port that is closed is never shown as Ready).
"""
