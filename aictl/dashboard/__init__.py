"""The live dashboard: server-rendered pages over the state database, served by the daemon on
its loopback port or by ``aictl dashboard`` without one.

``views`` reads (through the read queries of ``aictl.store.dashboard``), ``pages`` and ``svg``
render, ``feed`` tells open pages that something changed (server-sent events), ``app`` routes
requests and guards the approvals with the secret token (``auth``).
"""
