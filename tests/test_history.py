"""History: runs ordered by version, step changes marked, figures written."""

import numpy as np

from slmbench.cli import main
from slmbench.history import history
from slmbench.results import read_run, write_json_atomic
from test_compare import make_record, write_run


def versioned_run(tmp_path, name, version, rng, tg_ms):
    d = write_run(tmp_path, name, [make_record(rng, tg_ms=tg_ms)])
    write_json_atomic(f"{d}/env.json", {"device": {"label": "cpu-test"},
                                        "versions": {"llama_cpp_python": version}})
    return d


def test_history_orders_by_version_and_flags_a_step(tmp_path, capsys):
    rng = np.random.default_rng(7)
    # written out of order on purpose: 0.3.10 must sort after 0.3.9
    c = versioned_run(tmp_path, "c", "0.3.10", rng, 13.0)
    a = versioned_run(tmp_path, "a", "0.3.8", rng, 10.0)
    b = versioned_run(tmp_path, "b", "0.3.9", rng, 10.0)
    series = history([read_run(x) for x in (c, a, b)], metrics=["decode"])
    tg = next(s for s in series if s.metric == "decode tok/s")
    assert [p.label for p in tg.points] == ["0.3.8", "0.3.9", "0.3.10"]
    assert [p.step for p in tg.points] == ["", "", "slower"]
    assert main(["history", a, b, c, "--plot", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert "SLOWER" in out and "history-tg32_decode_tok_s.png" in out
    assert (tmp_path / "fig" / "history-tg32_decode_tok_s.svg").exists()
    assert main(["history", a]) == 2
