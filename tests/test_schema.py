"""The results schema is documented in one generated file that must not drift."""

from pathlib import Path

from slmbench.schema import SCHEMA_VERSION, Record, schema_markdown


def test_schema_doc_is_current():
    doc = Path(__file__).resolve().parent.parent / "docs" / "results-schema.md"
    assert doc.read_text(encoding="utf-8").strip() == schema_markdown().strip(), (
        "docs/results-schema.md is stale: run `python -m slmbench.schema > "
        "docs/results-schema.md`")


def test_every_field_is_documented():
    import dataclasses

    from slmbench import schema

    for cls in (schema.Record, schema.ModelFacts, schema.Settings, schema.LoadResult,
                schema.Memory, schema.Buffer, schema.KVProjection, schema.TestResult,
                schema.Stats, schema.PerfCounters):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), f"{cls.__name__}.{f.name} has no doc"
    assert Record().schema_version == SCHEMA_VERSION


def test_human_count_rounds_across_units():
    from slmbench.display import human_count

    assert [human_count(x) for x in (999_885_952, 268_098_176, 134_515_008, 999_400, 42,
                                     2e12, None)] == ["1B", "268M", "135M", "999K", "42", "2T",
                                                      "?"]
