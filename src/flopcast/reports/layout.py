"""The report form of the layout record: :class:`LayoutInfo`, derived field by field from
:data:`flopcast.layout.LAYOUT_SPECS` (names, defaults and descriptions are declared there, once)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from flopcast.estimator.arrays import RECOMPUTE_NAMES
from flopcast.layout import LAYOUT_SPECS

Recompute = Literal[RECOMPUTE_NAMES]  # type: ignore[valid-type]


class _LayoutBase(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


def _field(spec):
    kind = Recompute if spec.name == "recompute" else int
    return (kind, Field(spec.default, description=spec.help))


LayoutInfo = create_model(
    "LayoutInfo",
    __base__=_LayoutBase,
    __doc__="A parallel layout: the flags ``estimate`` takes to reproduce it (flopcast.layout.Layout).",
    **{spec.name: _field(spec) for spec in LAYOUT_SPECS},
)


LayoutQueryInfo = create_model(
    "LayoutQueryInfo",
    __base__=_LayoutBase,
    __doc__="The layout options as given (null = chosen by the search).",
    **{
        spec.name: ((Recompute if spec.name == "recompute" else int) | None, Field(None, description=spec.help))
        for spec in LAYOUT_SPECS
    },
)


def layout_info(layout) -> LayoutInfo:
    """The report form of a :class:`flopcast.layout.Layout` (validated)."""
    return LayoutInfo(**layout.as_dict())
