"""Reading a small YAML file the user wrote (thresholds, map files) with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlError(ValueError):
    """A YAML file that cannot be read or parsed: one line naming the file and the line."""


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise YamlError(f"{path}: cannot read it: {err.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise YamlError(f"{path}{where}: not YAML: {problem}") from None
