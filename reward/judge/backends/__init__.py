"""Judge backends: each finds the first incorrect step of a segmented response (see reward/judge/core.py)."""
