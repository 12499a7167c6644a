"""Where the Hydra configs live: the repo's conf/ (editable install) or the wheel's copy."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPO_CONF = _PACKAGE.parents[1] / "conf"

# A checkout (editable install) edits conf/ in place; a wheel ships it as convattn/conf.
CONFIG_DIR = str(_REPO_CONF if (_REPO_CONF / "train.yaml").is_file() else _PACKAGE / "conf")
