"""The daemon: ``aictl daemon start`` keeps taking ready work and doing it until told to stop.

Modules, each small enough to read in one sitting:

- ``runtime``: where the daemon keeps its files (lock, pid, state, log) and the single-instance
  file lock;
- ``jsonlog``: the JSON-lines log at ``.ai/logs/daemon.jsonl``;
- ``scheduler``: the loop (sweep, snapshot, reload, dispatch) and the execution threads;
- ``reload``: the last valid policy kept in force while a broken edit is refused;
- ``notify``: notifications (console, log, signed webhooks, chat through apprise);
- ``metrics`` and ``http``: ``/health`` and ``/metrics`` on 127.0.0.1;
- ``status``: what ``daemon status``, ``daemon logs`` and ``task watch`` read.

See ``docs/daemon.md``.
"""
