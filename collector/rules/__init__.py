"""Alarm rules: conditions, the engine, its memory and the site's rulebook."""
