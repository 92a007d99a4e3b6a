"""The Python API: the example of docs/api.md runs as written, and the surface is what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import slmbench

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_the_notebook_example_of_the_docs_runs(tmp_path, monkeypatch):
    code = "\n".join(re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S))
    assert "slmbench.bench(" in code and "slmbench.compare_runs(" in code
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {"__name__": "docs_api"})
    text = out.getvalue()
    assert re.search(r"Q8_0 prefill \d+ tok/s, decode [\d.]+ ms/token, peak RSS \d+ MiB", text)
    assert "{'ok': 2, 'failed': 0, 'skipped': 0}" in text
    assert "regressions" in text
    assert re.search(r"ship tiny:Q[48]_0", text)
    assert "refused: " in text and "no such model file" in text
    assert "n_ctx: 8 is smaller than" in text
    assert len(list((tmp_path / "results").iterdir())) == 2


def test_the_exported_names_exist():
    import slmbench.verdict  # noqa: F401 - a submodule must not shadow an API function
    for name in slmbench.__all__:
        assert getattr(slmbench, name) is not None, name
    assert callable(slmbench.recommend)
    assert issubclass(slmbench.ModelLoadError, slmbench.SlmbenchError)


def test_no_exported_function_is_shadowed_by_a_submodule():
    """`slmbench.x` must stay the API's x after `import slmbench.x` of a module of that name."""
    import importlib
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(slmbench.__path__)}
    clash = sorted(set(slmbench.__all__) & modules)
    assert not clash, f"exported names that are also submodules: {clash}"
    for name in modules - {"__main__"}:
        importlib.import_module(f"slmbench.{name}")
    assert callable(slmbench.score_quality) and callable(slmbench.sustain)
