"""Reproducible draws: the same seed and key give the same number on every run and
after a restart, whatever else was drawn before."""


def unit(*key: int) -> float:
    """A reproducible uniform draw in [0, 1) from integers (splitmix64)."""
    x = 0x9E3779B97F4A7C15
    for k in key:
        x = (x ^ (k & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return (x >> 11) / float(1 << 53)
