"""TekTree's domain: actor classes, the domain event catalog and pure rule modules.

Built on :mod:`tektree` only (never on :mod:`gateway`). The game loop (profiles, XP, levels,
streaks, achievements, quests, leaderboards, rooms) lands here with its own issue.
"""

__all__: list[str] = []
