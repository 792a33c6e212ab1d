"""Where the Copier template lives: inside the installed wheel, or in a source checkout."""

from pathlib import Path

from flaskscale_gen.errors import FlaskscaleError

PACKAGE_DIR = Path(__file__).resolve().parent


def template_root() -> Path:
    """The folder holding ``copier.yml`` and ``template/``."""
    for candidate in (PACKAGE_DIR / "_template", PACKAGE_DIR.parents[1]):
        if (candidate / "copier.yml").is_file() and (candidate / "template").is_dir():
            return candidate
    raise FlaskscaleError(
        f"the project template is missing from {PACKAGE_DIR}: reinstall flaskscale-gen"
    )


def is_checkout(root: Path) -> bool:
    """True for a git source checkout (development), False for an installed wheel."""
    return (root / ".git").exists()
