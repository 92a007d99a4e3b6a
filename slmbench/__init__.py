"""slmbench: on-device benchmarking of small language models served by llama.cpp.

The Python API (docs/api.md); names are imported on first use, so ``import slmbench`` stays
fast for the command line and the worker processes::

    import slmbench
    records = slmbench.bench(["model.gguf"], n_prompt=[64], n_gen=[16], threads=2)
    result = slmbench.run_suite("demo")
    table = slmbench.load_table([result.run_dir])
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    # functions (slmbench.api)
    "bench": "api", "measure_config": "api", "run_suite": "api", "load_suite": "api",
    "plan_suite": "api", "score_quality": "api", "measure_suite": "api", "sustain": "api",
    "recommend": "api", "profile_models": "api",
    "read_run": "results", "load_table": "analysis", "load_csv": "analysis",
    "analyze": "findings", "write_report": "report", "compare_runs": "compare",
    "push": "sharing", "pull": "sharing", "resolve_run_paths": "sharing",
    # settings and the results schema
    "Settings": "config", "TestPlan": "config", "FIELDS": "config",
    "Record": "schema", "TestResult": "schema", "Stats": "schema", "Memory": "schema",
    "ModelFacts": "schema", "LoadResult": "schema", "SCHEMA_VERSION": "schema",
    "OperatorProfile": "schema",
    "Run": "results", "RunResult": "runner", "CompareResult": "compare",
    "Recommendation": "verdict", "WORKLOADS": "config", "TARGET_METRICS": "config",
    # errors
    "SlmbenchError": "errors", "ConfigError": "errors", "ModelFetchError": "errors",
    "ModelLoadError": "errors", "MeasurementError": "errors", "ResultsFormatError": "errors",
    "HubError": "errors", "ProfileError": "errors",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'slmbench' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"slmbench.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
