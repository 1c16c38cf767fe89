"""Find stn_ros's own installed files (config/, weights/, launch/) wherever the package runs from.

Three layouts are supported, tried in this order:
1. a ROS workspace (``colcon build``; ``ament_index`` knows the package through AMENT_PREFIX_PATH),
2. a non-editable pip install (``data_files`` under ``<sys.prefix>/share/stn_ros``),
3. the source checkout the package is imported from (an editable install, as in ``.venv``).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = 'stn_ros'


def _ament_share() -> Path | None:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, LookupError, ValueError, OSError):  # OSError: AMENT_PREFIX_PATH unset
        return None


@lru_cache(maxsize=1)
def share_directory() -> Path:
    """The directory holding ``package.xml``, ``config/``, ``weights/`` and ``launch/`` of stn_ros."""
    candidates = [_ament_share(), Path(sys.prefix) / 'share' / PACKAGE, Path(__file__).resolve().parents[2]]
    for candidate in candidates:
        if candidate is not None and (candidate / 'package.xml').is_file():
            return candidate
    tried = ', '.join(str(c) for c in candidates if c is not None)
    raise FileNotFoundError(
        f'cannot find the {PACKAGE} share directory (tried {tried}); install the package with colcon or pip'
    )


def package_file(*parts: str) -> Path:
    """Path of a file shipped with the package, e.g. ``package_file('config', 'stn_node.yaml')``."""
    return share_directory().joinpath(*parts)
