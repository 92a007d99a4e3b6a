"""Human-readable rendering of records: every number with its unit and its spread."""

from __future__ import annotations

from slmbench.schema import Record, Stats, TestResult


def human_count(n: float | None) -> str:
    if n is None:
        return "?"
    # 0.9995 x the unit: 999,885,952 rounds to "1B", not "1e+03M"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= 0.9995 * div:
            return f"{n / div:.3g}{suffix}"
    return str(int(n))


def fmt(x: float | None, digits: int = 2) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:,.{digits}f}"


def _ci(stats: Stats | None, digits: int = 2) -> str:
    if stats is None or stats.n < 2 or stats.ci95_low is None or stats.ci95_low != stats.ci95_low:
        return "-"
    return f"[{stats.ci95_low:,.{digits}f}, {stats.ci95_high:,.{digits}f}]"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    for r in rows:
        lines.append("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def test_rows(tests: list[TestResult]) -> list[list[str]]:
    rows = []
    for t in tests:
        ts, ms = t.ts, t.ms
        tok = "-"
        if t.token_ms_median is not None:
            tok = f"{t.token_ms_median:.3f} / {t.token_ms_p90:.3f} / {t.token_ms_p99:.3f}"
        rows.append([
            t.name,
            f"{fmt(ts.mean if ts else None, 1)} ± {fmt(ts.stdev if ts else None, 1)}",
            fmt(ms.median if ms else None, 3),
            _ci(ms, 3),
            f"{fmt(ms.cv_pct if ms else None, 1)}%",
            str(ms.n if ms else 0),
            tok,
        ])
    return rows


TEST_HEADER = ["test", "tokens/s (mean ± sd)", "ms (median)", "ms 95% CI", "CV", "n",
               "ms/token p50 / p90 / p99"]


def format_record(rec: Record) -> str:
    """A block of text describing one measured config."""
    m, s = rec.model, rec.settings
    if rec.status != "ok":
        return f"{rec.model_id} {rec.quant or ''}: {rec.status.upper()} - {rec.reason}"
    head = (f"{rec.model_id}  {rec.quant}  {human_count(m.n_params)} params  "
            f"{m.bits_per_weight:.2f} bits/weight  {m.architecture}  "
            f"threads {s.n_threads}/{s.n_threads_batch}  n_ctx {rec.memory.n_ctx if rec.memory else '?'}"
            f"  cache {s.type_k}/{s.type_v}  ngl {s.n_gpu_layers}  reps {s.repetitions} "
            f"(+{s.warmup} warm-up)")
    out = [head, table(test_rows(rec.tests), TEST_HEADER)]
    mem = rec.memory
    if mem:
        kv_note = ""
        if mem.kv_analytic_mib is not None:
            err = mem.kv_analytic_error_pct
            kv_note = f" (analytic {mem.kv_analytic_mib:.2f}" + (
                f", {err:+.1f}%)" if err is not None else ")")
        out.append(
            f"memory: weights {mem.model_mib:.2f} MiB | KV {mem.kv_mib:.2f} MiB{kv_note} | "
            f"compute {mem.compute_mib:.2f} MiB reserved | output {mem.output_mib:.2f} MiB | "
            f"other {mem.other_mib:.2f} MiB | peak RSS {mem.peak_rss_mib:.1f} MiB "
            f"(kernel high-water {fmt(mem.hwm_rss_mib, 1)}) | KV share {100 * mem.kv_share:.2f}%")
        if mem.reserved_not_resident_mib:
            out.append(f"        {mem.reserved_not_resident_mib:.1f} MiB of reserved buffers "
                       "never became resident (buffers sized for batches that did not run)")
        p = mem.projection
        if p and p.n_ctx_train:
            c50 = f"{p.ctx_kv_share_50:,}" if p.ctx_kv_share_50 else "> 1M"
            c80 = f"{p.ctx_kv_share_80:,}" if p.ctx_kv_share_80 else "> 1M"
            out.append(f"KV projection: at the training context {p.n_ctx_train:,} tokens KV is "
                       f"{p.kv_mib_at_train_ctx:,.1f} MiB = {100 * p.kv_share_at_train_ctx:.1f}% "
                       f"of memory; KV passes 50% at {c50} and 80% at {c80} tokens")
    if rec.load:
        ld = rec.load
        out.append(f"load: model {ld.load_ms:.1f} ms + context {ld.ctx_ms:.1f} ms; RSS "
                   f"{ld.rss_before_load_mib:.1f} -> {ld.rss_after_load_mib:.1f} (model) -> "
                   f"{ld.rss_after_ctx_mib:.1f} MiB (context)")
    for t in rec.tests:
        sens = t.sensors
        if sens and not sens.error:
            bits = []
            if sens.temp_max_c is not None:
                bits.append(f"max {sens.temp_max_c:.0f} C")
            if sens.avg_power_w is not None:
                bits.append(f"{sens.avg_power_w:.2f} W")
            for value, label in ((sens.j_per_prefill_token, "J/prefill token"),
                                 (sens.j_per_decode_token, "J/decode token")):
                if value:
                    bits.append(f"{value:.4f} {label}")
            if bits:
                out.append(f"sensors {t.name}: " + ", ".join(bits))
    for w in rec.warnings:
        out.append(f"WARNING: {w}")
    return "\n".join(out)
