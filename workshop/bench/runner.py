"""The benchmark: four ways to stream the same answer from the same emulator, side by side.

Configurations (``CONFIGS``):

- ``raw``: google-genai's ``client.aio.models.generate_content_stream``: the floor, no agent
  framework;
- ``run_async``: ADK's ``runner.run_async`` in process, ``StreamingMode.SSE``;
- ``reference``: the workshop's reference SSE endpoint (``reference_server``) over
  loopback HTTP (uvicorn on a thread; client httpx + httpx-sse);
- ``run_sse``: ADK's built-in ``POST /run_sse`` (``get_fast_api_app``) over loopback HTTP, served
  the same way.

Everything runs in one process: the emulator on its own thread (its per-chunk send times
``sent_at`` are only visible in process), each server on its own uvicorn thread, the clients on
the caller's event loop. Both clocks are ``time.time()``, so "client received chunk i" minus
"emulator sent chunk i" is the latency the framework (and the HTTP hop) adds to that chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ..backend import model_name
from ..gemini_emulator import EmulatorHandle, start_emulator
from .stats import summary
from .worker import Stream

CONFIGS = ("raw", "run_async", "reference", "run_sse")
LABELS = {
    "raw": "raw google-genai stream",
    "run_async": "ADK run_async (in process)",
    "reference": "reference SSE endpoint (HTTP)",
    "run_sse": "ADK /run_sse (HTTP)",
}
RESULTS_DIR = Path(__file__).resolve().parents[2] / "results" / "bench"
SCHEMA = 2  # bump when the JSON's shape changes: older files are then ignored


@dataclass
class BenchConfig:
    """How much to measure. ``FULL`` is ``make bench``; ``QUICK`` is CI's few seconds."""

    concurrency: tuple[int, ...] = (1, 10, 100)
    batches: dict[int, int] = field(default_factory=lambda: {1: 20, 10: 4, 100: 2})
    count_to: int = 20  # the prompt is "Count to N": N+1 chunks, one number per chunk
    pacings: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"zero": (0.0, 0.0), "realistic": (0.3, 0.03)})
    configs: tuple[str, ...] = CONFIGS
    memory_streams: int = 50
    memory_chunk_s: float = 0.25  # slow enough that every stream is still open when it is measured
    profile_streams: int = 20
    profile: bool = True

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["batches"] = {str(k): v for k, v in self.batches.items()}
        return data


FULL = BenchConfig()
QUICK = BenchConfig(concurrency=(1, 10), batches={1: 2, 10: 1}, count_to=6,
                    pacings={"zero": (0.0, 0.0), "realistic": (0.05, 0.02)},
                    memory_streams=5, memory_chunk_s=0.2, profile_streams=2)


@contextlib.contextmanager
def pointed_at(emulator: EmulatorHandle):
    """Point google-genai (and so ADK) in this process at ``emulator``; restore after."""
    names = ("GOOGLE_GEMINI_BASE_URL", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")
    saved = {n: os.environ.get(n) for n in names}
    for n in names:
        os.environ.pop(n, None)
    os.environ["GOOGLE_GEMINI_BASE_URL"] = emulator.url
    os.environ["GOOGLE_API_KEY"] = "benchmark"
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def _sent_times(emulator: EmulatorHandle) -> dict[str, tuple[float, list[float]]]:
    """tag -> (when the emulator got the request, its per-chunk send times), from its log."""
    out = {}
    for record in emulator.requests:
        blob = json.dumps(record.body or {})
        start = blob.find("benchmark stream ")
        if start >= 0:
            tag = blob[start + len("benchmark stream "):].split(")")[0]
            out[tag] = (record.started_at, list(record.sent_at))
    return out


class Collector:
    """Samples for one (pacing, configuration, concurrency) cell."""

    def __init__(self) -> None:
        self.ttfe: list[float] = []
        self.to_model: list[float] = []
        self.latency: list[float] = []
        self.gaps: list[float] = []
        self.emulator_gaps: list[float] = []
        self.throughput: list[float] = []
        self.events = 0
        self.chunk_events = 0
        self.cpu: dict[str, float] = {}
        self.unmatched = 0

    def add_batch(self, streams: list[Stream], sent: dict[str, tuple[float, list[float]]], wall: float,
                  cpu: dict[str, float]) -> None:
        chunks = 0
        for s in streams:
            self.ttfe.append(s.first_event - s.started)
            self.events += s.events
            chunks += len(s.chunk_times)
            if s.tag not in sent:
                self.unmatched += 1
                continue
            asked, emitted = sent[s.tag]
            self.to_model.append(asked - s.started)
            self.unmatched += abs(len(emitted) - len(s.chunk_times))
            self.latency += [r - e for r, e in zip(s.chunk_times, emitted, strict=False)]
            self.gaps += [b - a for a, b in zip(s.chunk_times, s.chunk_times[1:], strict=False)]
            self.emulator_gaps += [b - a for a, b in zip(emitted, emitted[1:], strict=False)]
        self.chunk_events += chunks
        self.throughput.append(chunks / wall)
        for k, v in cpu.items():
            self.cpu[k] = self.cpu.get(k, 0.0) + v

    def result(self, config: str) -> dict[str, Any]:
        per = max(self.chunk_events, 1)
        cpu = {k: v / per * 1000 for k, v in self.cpu.items()}
        return {
            "streams": len(self.ttfe),
            "events": self.events,
            "chunk_events": self.chunk_events,
            "unmatched": self.unmatched,
            "ttfe_ms": summary(self.ttfe, 1000),
            "to_model_ms": summary(self.to_model, 1000),  # request sent -> the model asked
            "latency_ms": summary(self.latency, 1000),
            "gap_ms": summary(self.gaps, 1000),
            "emulator_gap_ms": summary(self.emulator_gaps, 1000),
            "events_per_s": summary(self.throughput),
            # client + server: everything but the model (the emulator)
            "cpu_ms_per_event": cpu.get("client", 0.0) + cpu.get("server", 0.0),
            "cpu_ms_per_event_by_process": cpu,
            "samples": {"ttfe_ms": [x * 1000 for x in self.ttfe],
                        "latency_ms": [x * 1000 for x in self.latency],
                        "gap_ms": [x * 1000 for x in self.gaps]},
        }


class _Children:
    """The client process and the two server processes, started in parallel."""

    def __init__(self, emulator: EmulatorHandle, configs: tuple[str, ...]) -> None:
        self.env = dict(os.environ)
        for n in ("GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
            self.env.pop(n, None)
        self.env.update(GOOGLE_GEMINI_BASE_URL=emulator.url, GOOGLE_API_KEY="benchmark",
                        PYTHONUNBUFFERED="1")
        self.log = tempfile.TemporaryFile(mode="w+")
        self.servers: dict[str, subprocess.Popen] = {}
        self.urls: dict[str, str] = {}
        self.client: subprocess.Popen | None = None
        self.configs = configs

    def _spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "workshop.bench.worker", *args], env=env or self.env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                cwd=str(Path(__file__).resolve().parents[2]))

    def _line(self, proc: subprocess.Popen, what: str) -> str:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the benchmark's {what} process ended: {self.log_tail()}")
        return line

    def log_tail(self, size: int = 3000) -> str:
        """The end of the children's stderr, read without moving the offset they share."""
        self.log.flush()
        end = os.fstat(self.log.fileno()).st_size
        return os.pread(self.log.fileno(), size, max(end - size, 0)).decode(errors="replace")

    def start(self) -> None:
        for name in ("reference", "run_sse"):
            if name in self.configs:
                self.servers[name] = self._spawn(name)
        for name, proc in self.servers.items():
            while not (line := self._line(proc, name)).startswith("PORT "):
                pass
            self.urls[name] = f"http://127.0.0.1:{int(line.split()[1])}"
        self.client = self._spawn("client", env={**self.env, "WORKSHOP_BENCH_URLS": json.dumps(self.urls)})
        self.reply("client")
        import httpx
        for url in self.urls.values():  # bound is not listening: wait for uvicorn
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{url}/docs", timeout=2)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def reply(self, what: str = "client") -> dict[str, Any]:
        assert self.client is not None
        while True:
            line = self._line(self.client, what).strip()
            if line.startswith("{"):
                data = json.loads(line)
                if "error" in data:  # with the children's stderr, which says what went wrong there
                    raise RuntimeError(f"benchmark client: {data['error']}\n{self.log_tail()}")
                return data

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.client is not None and self.client.stdin is not None
        self.client.stdin.write(json.dumps(cmd) + "\n")
        self.client.stdin.flush()
        return self.reply()

    def stop(self) -> None:
        if self.client is not None and self.client.poll() is None:
            with contextlib.suppress(Exception):
                self.client.stdin.write(json.dumps({"cmd": "quit"}) + "\n")  # type: ignore[union-attr]
                self.client.stdin.flush()  # type: ignore[union-attr]
                self.client.wait(10)
        for proc in [*self.servers.values(), self.client]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.log.close()


def _cpu_seconds(pid: int) -> float:
    with contextlib.suppress(psutil.Error):
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    return 0.0


def _progress(printer: Callable[[str], None] | None, text: str) -> None:
    if printer:
        printer(text)


async def run_benchmark(config: BenchConfig = FULL, *, progress: Callable[[str], None] | None = print,
                        ) -> dict[str, Any]:
    """Run every configuration at every pacing and concurrency; return the results as a dict.

    The emulator runs in this process (its per-chunk send times are only visible here); the
    client and each HTTP server run in their own processes, as they would in production, so
    that no two of them share a GIL.
    """
    started = time.time()
    emulator = start_emulator(first_token_s=0, chunk_s=0, words_per_chunk=1)
    results: dict[str, Any] = {
        "meta": {"schema": SCHEMA, "config": config.to_dict(), "cpus": os.cpu_count(), "loadavg_before": os.getloadavg(),
                 "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                 "model": model_name(),
                 "processes": "emulator: the benchmark's own process; client: one child process "
                              "(it is the application for raw and run_async); each HTTP server: its own child"},
        "pacing": {}, "memory": {}, "profile": {},
    }
    children = _Children(emulator, config.configs)

    def elapsed() -> str:
        return f"[{time.time() - started:5.1f}s]"

    try:
        await asyncio.to_thread(children.start)
        _progress(progress, f"{elapsed()} started: emulator {emulator.url} (this process), client pid "
                            f"{children.client.pid}, servers {children.urls}")
        for name in config.configs:  # warm up: imports, connections, lazy clients
            await asyncio.to_thread(children.ask, cmd="batch", config=name, n=2, count_to=3, prefix="warm")
        for pacing_name, (first_s, chunk_s) in config.pacings.items():
            emulator.set_pacing(first_token_s=first_s, chunk_s=chunk_s)
            cells: dict[str, dict[int, Collector]] = {c: {} for c in config.configs}
            for n in config.concurrency:
                t_level = time.perf_counter()
                for rep in range(config.batches.get(n, 1)):
                    for name in config.configs:  # interleaved, so drift hits all alike
                        emulator.reset()
                        server = children.servers.get(name)
                        server_cpu0 = _cpu_seconds(server.pid) if server else 0.0
                        emulator_cpu0 = time.process_time()
                        reply = await asyncio.to_thread(children.ask, cmd="batch", config=name, n=n,
                                                        count_to=config.count_to, prefix=f"{pacing_name}{n}r{rep}")
                        cpu = {"client": reply["cpu"], "emulator": time.process_time() - emulator_cpu0,
                               "server": (_cpu_seconds(server.pid) - server_cpu0) if server else 0.0}
                        streams = [Stream(**s) for s in reply["streams"]]
                        cells[name].setdefault(n, Collector()).add_batch(
                            streams, _sent_times(emulator), reply["wall"], cpu)
                line = " · ".join(f"{c} {cells[c][n].result(c)['latency_ms']['median']:.2f}"
                                  for c in config.configs)
                _progress(progress, f"{elapsed()} pacing {pacing_name} ({first_s}s/{chunk_s}s), {n:3} streams "
                                    f"x{config.batches.get(n, 1)} ({time.perf_counter() - t_level:.1f}s): "
                                    f"median per-event latency (ms) {line}")
            results["pacing"][pacing_name] = {
                "first_token_s": first_s, "chunk_s": chunk_s,
                "configs": {c: {str(n): col.result(c) for n, col in cells[c].items()} for c in config.configs},
            }
        if config.memory_streams:
            emulator.set_pacing(first_token_s=0.0, chunk_s=config.memory_chunk_s)
            for name in config.configs:
                m = await asyncio.to_thread(children.ask, cmd="memory", config=name, n=config.memory_streams,
                                            count_to=config.count_to)
                m["process"] = "server" if name in children.servers else "client (the application)"
                results["memory"][name] = m
                _progress(progress, f"{elapsed()} memory {name}: {m['traced_kib_per_stream']:.1f} KiB Python heap, "
                                    f"{m['rss_kib_per_stream']:.1f} KiB RSS per open stream ({m['process']}; {m['still_open']}/{m['streams']} still open)")
    finally:
        await asyncio.to_thread(children.stop)
    try:
        if config.profile:
            from .profiling import profile_endpoints
            emulator.set_pacing(first_token_s=0.0, chunk_s=0.0)
            with pointed_at(emulator):
                results["profile"] = await profile_endpoints(emulator, config.count_to, config.profile_streams)
            _progress(progress, f"{elapsed()} profiled the hot path of both HTTP endpoints")
    finally:
        emulator.stop()
    results["meta"]["loadavg_after"] = os.getloadavg()
    results["meta"]["seconds"] = time.time() - started
    results["ratios"] = ratios(results)
    results["goals"] = goals(results)
    return results


def _metric(results: dict, pacing: str, config: str, n: str, metric: str, stat: str = "median") -> float:
    return results["pacing"][pacing]["configs"][config][n][metric][stat]


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Each configuration's medians and p99s divided by the raw floor's and by /run_sse's."""
    out: dict[str, Any] = {}
    for pacing, data in results["pacing"].items():
        configs = data["configs"]
        for base in ("raw", "run_sse"):
            if base not in configs:
                continue
            for config, levels in configs.items():
                for n, cell in levels.items():
                    for metric in ("ttfe_ms", "latency_ms", "gap_ms"):
                        for stat in ("median", "p99"):
                            denominator = configs[base][n][metric][stat]
                            value = cell[metric][stat] / denominator if denominator > 0 else float("nan")
                            out.setdefault(pacing, {}).setdefault(f"vs_{base}", {}).setdefault(
                                config, {}).setdefault(n, {})[f"{metric}_{stat}"] = value
                    base_cpu = configs[base][n]["cpu_ms_per_event"]
                    out[pacing][f"vs_{base}"][config][n]["cpu_per_event"] = (
                        cell["cpu_ms_per_event"] / base_cpu if base_cpu > 0 else float("nan"))
    return out


# A verdict needs this many streams measured at its level; fewer (the quick run) is reported
# as too small a sample to conclude.
MIN_STREAMS_TO_CONCLUDE = 20


def conclusive(cell: dict[str, Any]) -> bool:
    return cell["streams"] >= MIN_STREAMS_TO_CONCLUDE


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """The three goals, each with the figures behind the verdict. A level measured on fewer than
    ``MIN_STREAMS_TO_CONCLUDE`` streams is shown but not judged; so is a negative overhead
    (run_async slower than the HTTP server on top of it: noise, not a result)."""
    out: dict[str, Any] = {}
    configs = CONFIGS
    have = all(c in results["pacing"].get(p, {}).get("configs", {}) for p in results["pacing"] for c in configs)
    if not have:
        return out
    worst = []
    for pacing, data in results["pacing"].items():
        for n in data["configs"]["reference"]:
            for metric in ("ttfe_ms", "latency_ms"):
                ratio = results["ratios"][pacing]["vs_run_sse"]["reference"][n][f"{metric}_median"] \
                    if "ratios" in results else _metric(results, pacing, "reference", n, metric) / \
                    _metric(results, pacing, "run_sse", n, metric)
                worst.append({"pacing": pacing, "streams": int(n), "metric": metric, "ratio": ratio,
                              "conclusive": conclusive(data["configs"]["reference"][n])
                              and conclusive(data["configs"]["run_sse"][n])})
    judged_ratios = [w for w in worst if w["conclusive"]]
    out["reference_vs_run_sse"] = {"met": all(w["ratio"] <= 1.0 for w in judged_ratios)
                                   if judged_ratios else None, "ratios": worst}
    added = []
    for pacing, data in results["pacing"].items():
        for n in data["configs"]["reference"]:
            ref, run = data["configs"]["reference"][n], data["configs"]["run_async"][n]
            added.append({"pacing": pacing, "streams": int(n),
                          "added_ms": ref["latency_ms"]["median"] - run["latency_ms"]["median"],
                          # CPU: the reference server's per event over ADK run in process
                          "added_cpu_ms": ref["cpu_ms_per_event_by_process"]["server"]
                          - run["cpu_ms_per_event_by_process"]["client"],
                          "conclusive": conclusive(ref) and conclusive(run)})
    for a in added:  # less than nothing added is noise in this run, not a result
        a["conclusive"] = a["conclusive"] and a["added_ms"] >= 0
    # Judged where per-event latency is what a reader feels: realistic pacing (at zero pacing it
    # is a queue, reported alongside); the first pacing if there is no realistic one.
    judged = [a for a in added if a["pacing"] == ("realistic" if "realistic" in results["pacing"]
                                                  else next(iter(results["pacing"])))]
    counted = [a for a in judged if a["conclusive"]]
    out["http_layer_added_ms"] = {"met": all(a["added_ms"] < 1.0 for a in counted) if counted else None,
                                  "judged": judged, "by_level": added}
    if "realistic" in results["pacing"]:
        levels = results["pacing"]["realistic"]["configs"]["reference"]
        top = max(levels, key=int)
        p99 = levels[top]["gap_ms"]["p99"]
        out["p99_gap_at_max_streams"] = {
            "met": p99 < 50 and int(top) >= 100, "streams": int(top), "p99_gap_ms": p99,
            "conclusive": conclusive(levels[top]), "samples": levels[top]["streams"],
            "emulator_p99_gap_ms": levels[top]["emulator_gap_ms"]["p99"],
            "chunk_s": results["pacing"]["realistic"]["chunk_s"]}
    return out


def write_results(results: dict[str, Any], out_dir: Path | str = RESULTS_DIR, *, plots: bool = True) -> Path:
    """Write ``results.json`` (and the plots) into ``out_dir``; return the JSON's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    path.write_text(json.dumps(results, indent=1, default=float))
    if plots:
        from .plots import save_plots
        save_plots(results, out_dir)
    return path


def load_results(path: Path | str = RESULTS_DIR / "results.json") -> dict[str, Any] | None:
    """The results ``make bench`` wrote; None if absent or written by an older benchmark."""
    path = Path(path)
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    return results if results.get("meta", {}).get("schema") == SCHEMA else None
