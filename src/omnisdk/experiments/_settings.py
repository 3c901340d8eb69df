"""`[experiments]`: the global control group, read once by the composition root.

```toml
[experiments]
global_control = 0.05          # 5% of customers receive no marketing message at all
global_control_salt = "2026"   # change it to rotate who is in the group
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import ConfigError, ValidationError
from ._assign import GlobalControl

__all__ = ["ExperimentSettings"]

_KEYS = ("global_control", "global_control_salt")


@attrs.frozen
class ExperimentSettings:
    """The parsed `[experiments]` section; `global_control` is None when no group is configured."""

    global_control: GlobalControl | None = None

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> ExperimentSettings:
        """Bad values raise `ConfigError` naming the key (`experiments.global_control`)."""
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ConfigError("must be a table", field="experiments")
        for key in section:
            if key not in _KEYS:
                raise ConfigError(f"unknown key; expected one of {', '.join(_KEYS)}", field=f"experiments.{key}")
        share = section.get("global_control", 0)
        salt = section.get("global_control_salt", "")
        if not isinstance(salt, str | int) or isinstance(salt, bool):
            raise ConfigError("expected text or a number (the year, say)", field="experiments.global_control_salt")
        try:
            control = GlobalControl(share, salt=str(salt))
        except ValidationError as exc:
            raise ConfigError(str(exc).removeprefix(f"{exc.field}: "), field="experiments.global_control") from None
        return cls(control if control.share > 0 else None)
