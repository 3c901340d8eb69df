"""The brand kit: variables and partials every template shares, so every channel speaks in one voice."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._errors import ConfigError

__all__ = ["BrandKit"]


@attrs.frozen(kw_only=True)
class BrandKit:
    """`[brand]`: every key is a variable (`{{ brand.name }}`), except `partials`, a table of
    named template snippets (`{% include "footer" %}`), and `partials_folder`, whose files
    are partials named by their path inside it (`{% include "email/footer.html" %}`)."""

    variables: Mapping[str, Any] = attrs.field(factory=dict)
    partials: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_config(cls, section: Mapping[str, Any], *, base_dir: Path | None = None) -> BrandKit:
        variables = {k: v for k, v in section.items() if k not in ("partials", "partials_folder")}
        partials: dict[str, str] = {}
        folder = section.get("partials_folder")
        if folder is not None:
            path = Path(folder) if base_dir is None else base_dir / folder
            if not path.is_dir():
                raise ConfigError(f"{str(path)!r} is not a folder", field="brand.partials_folder")
            for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
                partials[file.relative_to(path).as_posix()] = file.read_text(encoding="utf-8")
        inline = section.get("partials", {})
        if not isinstance(inline, Mapping) or not all(isinstance(v, str) for v in inline.values()):
            raise ConfigError("expected a table of name = \"template text\"", field="brand.partials")
        partials.update(inline)
        return cls(variables=variables, partials=partials)
