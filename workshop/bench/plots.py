"""The benchmark's plots: latency distributions and throughput against concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .runner import CONFIGS, LABELS

PALETTE = ["tab:gray", "tab:blue", "tab:green", "tab:orange"]  # one colour per configuration


def _configs(results: dict[str, Any]) -> list[str]:
    some = next(iter(results["pacing"].values()))["configs"]
    return [c for c in CONFIGS if c in some]


def plot_latency(results: dict[str, Any], pacing: str, metric: str = "latency_ms", ax=None):
    """Box plots of ``metric`` samples, one box per configuration and concurrency level."""
    import matplotlib.pyplot as plt

    data = results["pacing"][pacing]["configs"]
    configs = _configs(results)
    levels = sorted(data[configs[0]], key=int)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4))
    positions, boxes, colors = [], [], []
    for i, n in enumerate(levels):
        for j, c in enumerate(configs):
            positions.append(i * (len(configs) + 1) + j)
            boxes.append(data[c][n]["samples"][metric] or [0.0])
            colors.append(PALETTE[j % len(PALETTE)])
    parts = ax.boxplot(boxes, positions=positions, widths=0.8, whis=(1, 99), showfliers=False,
                       patch_artist=True)
    for patch, color in zip(parts["boxes"], colors, strict=True):
        patch.set_facecolor(color)
        patch.set_alpha(0.6)
    ax.set_xticks([i * (len(configs) + 1) + (len(configs) - 1) / 2 for i in range(len(levels))])
    ax.set_xticklabels([f"{n} stream{'s' if int(n) > 1 else ''}" for n in levels])
    ax.set_yscale("log")
    names = {"latency_ms": "per-event latency (ms, log)", "ttfe_ms": "time to first event (ms, log)",
             "gap_ms": "inter-event gap (ms, log)"}
    ax.set_ylabel(names.get(metric, metric))
    ax.set_xlabel("concurrent streams (whiskers: p1-p99)")
    p = results["pacing"][pacing]
    ax.set_title(f"{names.get(metric, metric).split(' (')[0].capitalize()}, pacing '{pacing}' "
                 f"(first token {p['first_token_s']} s, {p['chunk_s']} s per chunk)")
    ax.legend([parts["boxes"][j] for j in range(len(configs))], [LABELS[c] for c in configs], fontsize=8)
    return ax


def plot_throughput(results: dict[str, Any], ax=None):
    """Median events per second against concurrent streams, per configuration and pacing."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for pacing, data in results["pacing"].items():
        for j, c in enumerate(_configs(results)):
            levels = sorted(data["configs"][c], key=int)
            ax.plot([int(n) for n in levels], [data["configs"][c][n]["events_per_s"]["median"] for n in levels],
                    marker="o", color=PALETTE[j % len(PALETTE)], linestyle="-" if pacing == "zero" else "--",
                    label=f"{LABELS[c]} ({pacing})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("model chunks delivered per second")
    ax.set_title("Throughput against concurrency (solid: zero pacing, dashed: realistic)")
    ax.legend(fontsize=7)
    return ax


def save_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    paths = []
    for pacing in results["pacing"]:
        for metric in ("latency_ms", "ttfe_ms", "gap_ms"):
            fig, ax = plt.subplots(figsize=(10, 4))
            plot_latency(results, pacing, metric, ax=ax)
            fig.tight_layout()
            path = out_dir / f"{metric.removesuffix('_ms')}_{pacing}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            paths.append(path)
    fig, ax = plt.subplots(figsize=(8, 5))
    plot_throughput(results, ax=ax)
    fig.tight_layout()
    path = out_dir / "throughput.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
    return paths
