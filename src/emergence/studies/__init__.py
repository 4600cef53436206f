"""Built-in studies: YAML files shipped inside the package, addressed by name (`emergence run default`).

The files in this directory are the single source of truth; the repository's top-level `studies/` only points
here, so that an installed package and a checkout run the same studies.
"""

from __future__ import annotations

from pathlib import Path

from emergence.errors import UserError
from emergence.registry import unknown_name_message

STUDIES_DIR = Path(__file__).resolve().parent
DEFAULT_STUDY = "default"


def builtin_studies() -> list[str]:
    """Names of the studies shipped with the package."""
    return sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))


def resolve_study(spec: str | None) -> Path:
    """A built-in study name or a path to a YAML file → the file; unknown names get "did you mean"."""
    if spec is None or spec == "":
        spec = DEFAULT_STUDY
    path = Path(spec).expanduser()
    looks_like_path = path.suffix in {".yaml", ".yml"} or "/" in spec or "\\" in spec
    if path.is_file():
        return path
    if looks_like_path:
        if path.is_dir():
            raise UserError(f"expected a study YAML file, got a directory: {path}")
        raise UserError(f"study file not found: {path}")
    builtin = STUDIES_DIR / f"{spec}.yaml"
    if builtin.is_file():
        return builtin
    raise UserError(
        unknown_name_message("study", spec, builtin_studies()) + " (or give a path to a YAML file)"
    )
