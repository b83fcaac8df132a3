"""Base of the site file's models: frozen pydantic models that refuse unknown keys, ids, texts."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]


class Model(BaseModel):
    """Base for site models: frozen, and unknown keys are errors (catches typos)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Model):
    """A text in Simplified Chinese (default) and English."""

    zh: str
    en: str

    def get(self, locale: str = "zh") -> str:
        """Return the text in `locale`, falling back to Chinese."""
        return self.en if locale.startswith("en") else self.zh
