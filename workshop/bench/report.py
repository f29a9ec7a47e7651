"""Plain-text tables of a benchmark result (the CLI prints them; notebook 11 shows them)."""

from __future__ import annotations

from typing import Any

from .runner import CONFIGS, LABELS


def _configs(results: dict[str, Any]) -> list[str]:
    some = next(iter(results["pacing"].values()))["configs"]
    return [c for c in CONFIGS if c in some]


def figures_table(results: dict[str, Any], pacing: str) -> str:
    data = results["pacing"][pacing]
    lines = [f"pacing '{pacing}': first token {data['first_token_s']} s, {data['chunk_s']} s per chunk",
             f"{'configuration':32} {'streams':>7} {'TTFE med':>9} {'p99':>8} {'to model':>8} {'latency med':>11} {'p99':>8} "
             f"{'gap p99':>8} {'chunks/s':>9} {'CPU ms/ev':>9}"]
    for c in _configs(results):
        for n, cell in sorted(data["configs"][c].items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"{LABELS[c]:32} {n:>7} {cell['ttfe_ms']['median']:9.2f} {cell['ttfe_ms']['p99']:8.2f} "
                f"{cell['to_model_ms']['median']:8.2f} "
                f"{cell['latency_ms']['median']:11.3f} {cell['latency_ms']['p99']:8.2f} "
                f"{cell['gap_ms']['p99']:8.2f} {cell['events_per_s']['median']:9.0f} "
                f"{cell['cpu_ms_per_event']:9.3f}")
    return "\n".join(lines)


def ratio_table(results: dict[str, Any], pacing: str, base: str) -> str:
    r = results["ratios"][pacing][f"vs_{base}"]
    lines = [f"ratios vs {LABELS[base]} (pacing '{pacing}'; < 1 is faster)",
             f"{'configuration':32} {'streams':>7} {'TTFE med':>9} {'latency med':>11} {'latency p99':>11} "
             f"{'gap p99':>8} {'CPU/ev':>7}"]
    for c in _configs(results):
        if c == base:
            continue
        for n, cell in sorted(r[c].items(), key=lambda kv: int(kv[0])):
            lines.append(f"{LABELS[c]:32} {n:>7} {cell['ttfe_ms_median']:9.2f} {cell['latency_ms_median']:11.2f} "
                         f"{cell['latency_ms_p99']:11.2f} {cell['gap_ms_p99']:8.2f} {cell['cpu_per_event']:7.2f}")
    return "\n".join(lines)


def _verdict(met: bool | None) -> str:
    return "not judged: too small a sample" if met is None else ("met" if met else "NOT met")


def goals_text(results: dict[str, Any]) -> str:
    """The goals as verdicts. Levels measured on too few streams, and negative overheads (noise),
    are shown in parentheses and left out of the verdict."""
    g = results.get("goals") or {}
    if not g:
        return "goals: not evaluated (not every configuration ran)"
    lines = []
    a = g["reference_vs_run_sse"]
    judged = [r for r in a["ratios"] if r.get("conclusive", True)] or a["ratios"]
    worst = max(judged, key=lambda x: x["ratio"])
    lines.append(f"[{_verdict(a['met'])}] reference / run_sse <= 1.0 on TTFE and per-event "
                 f"latency (medians) at every level: worst {worst['ratio']:.2f} ({worst['metric']}, "
                 f"{worst['streams']} streams, pacing {worst['pacing']})")
    b = g["http_layer_added_ms"]

    def added(x: dict[str, Any]) -> str:
        text = f"{x['streams']} streams {x['added_ms']:+.2f} ms"
        return text if x.get("conclusive", True) else f"({text}: not judged)"

    levels = ", ".join(added(x) for x in b["judged"])
    lines.append(f"[{_verdict(b['met'])}] HTTP+SSE adds < 1 ms median per event over run_async "
                 f"(pacing {b['judged'][0]['pacing']}): {levels}")
    cpu = ", ".join(f"{a['streams']}: {a['added_cpu_ms']:+.2f}" for a in b["judged"])
    zero = ", ".join(f"{a['streams']}: {a['added_ms']:+.1f}" for a in b["by_level"] if a["pacing"] == "zero")
    lines.append(f"      server CPU per event over run_async (ms, by streams) {cpu}; at zero pacing, where "
                 f"latency is a queue: {zero} ms")
    if "p99_gap_at_max_streams" in g:
        c = g["p99_gap_at_max_streams"]
        verdict = (("met" if c["met"] else "NOT met") if c.get("conclusive", True)
                   else f"not judged: {c.get('samples')} streams, too small a sample") \
            if c["streams"] >= 100 else f"not measured: this run stops at {c['streams']} streams"
        lines.append(f"[{verdict}] p99 inter-event gap < 50 ms at 100 streams, realistic "
                     f"pacing: {c['p99_gap_ms']:.1f} ms at {c['streams']} streams (the emulator's own p99 gap "
                     f"between chunks: {c['emulator_p99_gap_ms']:.1f} ms; chunk every {c['chunk_s'] * 1000:.0f} ms)")
    return "\n".join(lines)


def memory_table(results: dict[str, Any]) -> str:
    if not results.get("memory"):
        return ""
    lines = [f"{'memory per open stream':32} {'heap KiB':>8} {'RSS KiB':>8}  measured in"]
    for c, m in results["memory"].items():
        note = "" if m["still_open"] == m["streams"] else f"; only {m['still_open']} still open: an underestimate"
        lines.append(f"{LABELS[c]:32} {m['traced_kib_per_stream']:8.1f} {m['rss_kib_per_stream']:8.1f}  "
                     f"{m['process']} ({m['streams']} streams{note})")
    return "\n".join(lines)


def profile_table(results: dict[str, Any], top: int = 8) -> str:
    prof = results.get("profile") or {}
    lines = []
    for name in ("reference", "run_sse"):
        if name not in prof:
            continue
        p = prof[name]
        lines.append(f"profile of {LABELS[name]} + its client, {prof['streams']} streams at zero pacing: "
                     f"{p['ms_per_event']:.3f} ms of profiled CPU per event")
        for label, cat in list(p["by_category"].items())[:top]:
            lines.append(f"  {label:44} {cat['share'] * 100:5.1f} %  {cat['ms_per_event']:.3f} ms/event")
    return "\n".join(lines)


def format_report(results: dict[str, Any]) -> str:
    meta = results["meta"]
    parts = [f"\n{meta['cpus']} CPUs, load average before {tuple(round(x, 2) for x in meta['loadavg_before'])}, "
             f"after {tuple(round(x, 2) for x in meta.get('loadavg_after', ()))}; {meta.get('seconds', 0):.0f} s"]
    for pacing in results["pacing"]:
        parts.append(figures_table(results, pacing))
        for base in ("raw", "run_sse"):
            parts.append(ratio_table(results, pacing, base))
    parts += [memory_table(results), profile_table(results), goals_text(results)]
    return "\n\n".join(p for p in parts if p)
