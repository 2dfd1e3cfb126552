"""Policy: every configurable threshold of the regime, versioned, loadable from TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from grantflow.errors import InvalidInput

__all__ = ["Policy"]


class Policy(BaseModel):
    """Thresholds that rules read; a project is pinned to the version it started under.

    >>> Policy().version
    'default-1'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = "default-1"

    @classmethod
    def from_toml(cls, source: str | Path) -> Policy:
        """Load a policy from TOML text or a ``.toml`` file path; `InvalidInput` if invalid."""
        text = source.read_text("utf-8") if isinstance(source, Path) else source
        try:
            return cls.model_validate(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"policy TOML does not parse: {exc}") from exc
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(
                f"policy field {field!r}: {first['msg']}", field=field, errors=exc.errors()
            ) from exc
