"""Workflows: YAML DAGs of steps (tasks) with conditions, retries, loops and approval gates.

:mod:`~aictl.workflows.loader` loads and checks a file in stages (every error at once, with
file, line and field); :mod:`~aictl.workflows.definition` is the validated form;
:mod:`~aictl.workflows.expressions` compiles and evaluates the CEL conditions and templates;
:mod:`~aictl.workflows.suggest` proposes a workflow from a repository's history. The engine is
:mod:`aictl.services.workflows`; the scheduling decisions are :mod:`aictl.domain.workflows`.
"""
