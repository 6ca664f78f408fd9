"""The compact MCP listing stays faithful: every real answer still conforms to the shortened schemas."""

from __future__ import annotations

import jsonschema
from pydantic import BaseModel, Field

from prism_mcp.capability import registry
from prism_mcp.listing import compact_output, compact_schema


class Inner(BaseModel):
    name: str
    tags: list[str] = []


class Outer(BaseModel):
    kind: str = Field(description="A description that the compact schema drops.")
    maybe: int | None = None
    inner: Inner
    inners: list[Inner]
    table: dict[str, Inner]


def test_compact_output_outlines_the_answer_by_its_field_names_and_accepts_it() -> None:
    answer = Outer(kind="k", inner=Inner(name="a", tags=["x"]), inners=[Inner(name="b")], table={"t": Inner(name="c")})
    outline = compact_output(Outer.model_json_schema())
    jsonschema.validate(answer.model_dump(mode="json"), outline)
    assert outline == {"type": "object", "properties": {name: {} for name in Outer.model_fields}}


def test_every_tool_outline_names_exactly_its_model_fields() -> None:
    for cap in registry:
        outline = compact_output(cap.output_model.model_json_schema())
        assert list(outline["properties"]) == list(cap.output_model.model_fields), cap.name


def test_compact_input_schemas_keep_every_bound_and_description() -> None:
    for cap in registry:
        full = cap.input_model.model_json_schema()
        compact = compact_schema(full)
        assert set(compact.get("properties", {})) == set(full.get("properties", {})), cap.name
        for name, prop in full.get("properties", {}).items():
            text = str(compact["properties"][name])
            for bound in ("minimum", "maximum", "maxLength", "pattern", "enum"):
                if bound in str(prop):
                    assert bound in text, (cap.name, name, bound)
            assert prop.get("description", "") in text, (cap.name, name)
            assert "'title'" not in text
