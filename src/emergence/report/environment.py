"""The software environment of a study: collected when it runs (environment.json) and again when reported.

`collect_environment()` is cheap and imports nothing heavy, so a study runner can call it and write the result
to STUDY_DIR/environment.json; the report shows that record beside the environment rendering it.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

from emergence import __version__

PACKAGES = ("torch", "numpy", "pandas", "matplotlib", "pyarrow")
# Other spellings of the same facts that a recorded environment may use.
_ALIASES = {
    **dict.fromkeys(("git", "git rev", "git commit", "commit", "git sha", "revision"), "git revision"),
    **dict.fromkeys(("emergence", "emergence lab"), "emergence-lab"),
    "os": "platform",
}


def collect_environment() -> dict[str, str]:
    """Python, platform, package versions and the code's git revision (when it is a git checkout)."""
    env = {"python": platform.python_version(), "platform": platform.platform(), "emergence-lab": __version__}
    for pkg in PACKAGES:
        try:
            env[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            env[pkg] = "not installed"
    rev = git_revision(Path(__file__).resolve().parent)
    if rev:
        env["git revision"] = rev
    return env


def git_revision(path: Path) -> str | None:
    """The commit checked out where `path` lives (None outside a git checkout or without git)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def normalize_key(key: str) -> str:
    """ "git_revision", "numpy_version", "Python" → "git revision", "numpy", "python"."""
    k = str(key).strip().lower().replace("_", " ")
    for suffix in (" version", " ver"):
        if k.endswith(suffix):
            k = k[: -len(suffix)]
    return _ALIASES.get(k, k)


def normalize(env: dict[str, Any]) -> dict[str, Any]:
    """A recorded environment with its keys in the report's vocabulary."""
    return {normalize_key(k): v for k, v in env.items()}
