"""``attnlab.masks``: the public name of :mod:`attnlab.functional.masks` (True = may attend)."""

from attnlab.functional.masks import *  # noqa: F403  (the public names, as listed there)
from attnlab.functional.masks import __all__  # noqa: F401
