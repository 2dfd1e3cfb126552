"""`FrozenClock` for the testing kit (it lives in `grantflow._clock`)."""

from grantflow._clock import DEFAULT_START, FrozenClock

__all__ = ["DEFAULT_START", "FrozenClock"]
