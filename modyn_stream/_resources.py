"""Find files shipped beside the package (schemas, local-Kafka provisioning).

In a source checkout they live at the repository root (`schemas/`, `deploy/local/`); an installed
wheel carries copies under `modyn_stream/_bundled/`. The checkout wins, so edits take effect at once.
"""

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_ROOT = _PACKAGE_DIR.parent

_LOCATIONS = {
    "schemas": (_CHECKOUT_ROOT / "schemas", _PACKAGE_DIR / "_bundled" / "schemas"),
    "deploy_local": (_CHECKOUT_ROOT / "deploy" / "local", _PACKAGE_DIR / "_bundled" / "deploy_local"),
}


def resource_dir(name: str) -> Path:
    """Return the directory holding the named resource, or raise FileNotFoundError naming where it looked."""
    candidates = _LOCATIONS[name]
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"{name}: not found in any of {', '.join(str(p) for p in candidates)}")
