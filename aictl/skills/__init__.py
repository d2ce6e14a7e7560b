"""Skills on disk: the loader of one skill folder and the registry of ``.ai/skills/``.

The decisions about skills (versions, overrides, who qualifies) are pure functions in
``aictl.domain.skills``; running them and injecting them is ``aictl.services.skills``.
"""
