"""Load test of `medmo serve`: many concurrent clients on loopback, dynamic batching on vs off,
or (`--upstream`) the medical front end over an upstream vs the upstream alone.

    .venv/bin/python bench/serve_load.py                       # tiny model, 64 clients, 128 requests per mode
    .venv/bin/python bench/serve_load.py --model DIR --clients 64 --requests 256 --max-pixels 0
    .venv/bin/python bench/serve_load.py --upstream            # front end's overhead (target >= 0.95x)

For each mode the script starts a real server (`python -m medmo serve`, 127.0.0.1, a free
port) as a subprocess, waits for /healthz, sends one warm-up request, then lets `clients`
concurrent HTTP clients send `requests` POST /v1/ground requests in total (the same real
image each time; the X-ray from ../shared/data/vqa_rad when present). New requests stop
after `max_seconds`; requests already sent finish. It prints requests/s, p50/p95 latency,
the error count (anything but HTTP 200 counts), the server's mean batch size, and the
throughput ratio of batching on (`--max-batch-size`) vs off (max batch size 1, the same
server otherwise). Exit status 1 when any request failed.

`--upstream`: one `medmo serve` (batching on) is the upstream; the same load goes to it
directly, then to `medmo serve --upstream URL` in front of it (a second process that
decodes the image, shrinks it to `--max-pixels`, re-encodes it (a JPEG stays a JPEG, any
other image becomes a PNG) and asks the upstream's /v1/chat/completions), then to it directly again. The ratio front end / mean of
the two direct runs is the front end's overhead (target >= 0.95x), measured within one
run so the machine's load is much the same for all three.

Why the defaults (32 new tokens, a 256x256 model input budget): batching amortizes the
per-step cost of the decoding loop, which dominates on a GPU with MedMO-8B and, on a
CPU, for the tiny model with small images. The tiny model's vision encoder on a CPU is
compute-bound and grows linearly with image pixels, so with its default 512x512 budget
(256 visual tokens per image) batching gains much less; `--max-pixels 0` measures that
case (processor default) too.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image_data_url(path: str | None) -> str:
    default = sorted((ROOT.parent / "shared" / "data" / "vqa_rad" / "images").glob("*.jpg"))
    if path or default:
        data = Path(path or default[0]).read_bytes()
    else:  # no shared data: a synthetic 512x512 greyscale image
        import numpy as np
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 512), dtype=np.uint8)).save(buf, "PNG")
        data = buf.getvalue()
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def start_server(args, batch_size: int, port: int, extra: tuple[str, ...] = (),
                 upstream: str | None = None) -> subprocess.Popen:
    """`python -m medmo serve` on 127.0.0.1:port (`extra`: more serve options; bench/serve_abuse.py);
    with `upstream`, the front end over that server instead of a model."""
    cmd = [sys.executable, "-m", "medmo", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--max-new-tokens", str(args.max_new_tokens), *extra]
    if upstream:
        cmd += ["--upstream", upstream]
    else:
        cmd += [args.model, "--max-batch-size", str(batch_size), "--max-wait-ms", str(args.max_wait_ms)]
    if args.max_pixels:  # the front end shrinks images to the upstream's budget before sending them
        cmd += ["--max-pixels", str(args.max_pixels)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    log = tempfile.TemporaryFile(mode="w+")  # not a pipe: a full pipe would block the server's logging
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log = log
    return proc


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            proc.log.seek(0)
            raise RuntimeError(f"server exited with {proc.returncode}:\n{proc.log.read()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server at {url} not ready after {timeout} s")


async def load(url: str, body: dict, clients: int, total: int, max_seconds: float, headers: dict | None = None,
               poison=None) -> dict:
    """`clients` concurrent clients send `total` /v1/ground requests with `body`; `poison(i)`, when
    given, may return (path, raw JSON bytes) to send instead as request i (bench/serve_abuse.py):
    its answer counts as an error only when it is a 5xx, and not in the latencies."""
    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    deadline = time.monotonic() + max_seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < total and time.monotonic() < deadline:
            sent += 1
            bad = poison(sent) if poison else None
            if bad:
                r = await http.post(f"{url}{bad[0]}", content=bad[1], headers={**(headers or {}),
                                                                               "content-type": "application/json"})
                if r.status_code >= 500:
                    errors.append(f"poison got HTTP {r.status_code}")
                continue
            t0 = time.perf_counter()
            try:
                r = await http.post(f"{url}/v1/ground", json=body, headers=headers)
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                    continue
            except httpx.HTTPError as e:
                errors.append(f"{type(e).__name__}: {e}")
                continue
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - t0
    lat = sorted(latencies)
    return {"done": len(lat), "errors": errors, "wall": wall, "rps": len(lat) / wall, "latencies": lat,
            "p50": statistics.median(lat) if lat else float("nan"),
            "p95": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")}


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure(args, name: str, url: str, body: dict, batches_url: str | None = None) -> dict:
    """One warm-up request, then the load on `url`; the mean batch size from `batches_url`'s /healthz."""
    warm = httpx.post(f"{url}/v1/ground", json=body, timeout=300)
    warm.raise_for_status()
    batches_url = batches_url or url
    before = httpx.get(f"{batches_url}/healthz").json()
    out = asyncio.run(load(url, body, args.clients, args.requests, args.max_seconds))
    after = httpx.get(f"{batches_url}/healthz").json()
    batches = after["batches"] - before["batches"]
    out["mean_batch"] = (after["requests"] - before["requests"]) / batches if batches else 0.0
    out["name"] = name
    return out


def run_mode(args, name: str, batch_size: int, body: dict) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(args, batch_size, port)
    try:
        wait_ready(proc, url)
        return measure(args, name, url, body)
    finally:
        stop_server(proc)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_upstream(args, body: dict) -> list[dict]:
    """The upstream alone, then the front end (`medmo serve --upstream`) over the same upstream."""
    port, front_port = free_port(), free_port()
    url, front_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{front_port}"
    upstream = start_server(args, args.max_batch_size, port)
    front = None
    try:
        wait_ready(upstream, url)
        alone = measure(args, "upstream alone", url, body)
        front = start_server(args, args.max_batch_size, front_port, upstream=f"{url}/v1")
        wait_ready(front, front_url)
        cpu = cpu_seconds(front.pid)
        over = measure(args, "front end over it", front_url, body, batches_url=url)
        if cpu is not None:
            over["front_cpu_ms"] = (cpu_seconds(front.pid) - cpu) / max(1, over["done"]) * 1000
        return [alone, over, measure(args, "upstream alone, again", url, body)]
    finally:
        for proc in (front, upstream):
            if proc is not None:
                stop_server(proc)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: build the tiny model)")
    ap.add_argument("--image", default=None, help="image file to send (default: a vqa_rad X-ray)")
    ap.add_argument("--clients", type=int, default=64, help="concurrent HTTP clients")
    ap.add_argument("--requests", type=int, default=128, help="requests per mode (upper bound)")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="no new requests after this, per mode")
    ap.add_argument("--max-new-tokens", type=int, default=32, help="generation budget per request")
    ap.add_argument("--max-batch-size", type=int, default=16, help="batching on: most requests per model call")
    ap.add_argument("--max-wait-ms", type=float, default=10.0, help="batching wait window")
    ap.add_argument("--max-pixels", type=int, default=256 * 256,
                    help="model input pixel budget (0: the processor's default)")
    ap.add_argument("--upstream", action="store_true",
                    help="measure the front end (medmo serve --upstream) over a medmo upstream vs the upstream alone")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from medmo.model.tiny import build_tiny

            args.model = str(build_tiny(Path(tmp) / "tiny"))
        body = {"image": image_data_url(args.image), "target": "nodule"}
        print(f"model {args.model}; {args.clients} clients, <= {args.requests} requests per mode, "
              f"<= {args.max_seconds:.0f} s, {args.max_new_tokens} new tokens, "
              f"input budget {args.max_pixels or 'default'} px, 127.0.0.1")
        if args.upstream:
            results = run_upstream(args, body)
        else:
            results = [run_mode(args, f"batching on (max {args.max_batch_size})", args.max_batch_size, body),
                       run_mode(args, "batching off (max 1)", 1, body)]
    print(f"{'mode':<26}{'requests':>9}{'errors':>8}{'req/s':>8}{'p50 s':>8}{'p95 s':>8}{'mean batch':>12}")
    for r in results:
        print(f"{r['name']:<26}{r['done']:>9}{len(r['errors']):>8}{r['rps']:>8.2f}{r['p50']:>8.2f}{r['p95']:>8.2f}"
              f"{r['mean_batch']:>12.1f}")
        for e in r["errors"][:5]:
            print("   error:", e)
    if args.upstream:  # the upstream alone before and after: a drift in the machine's load shows
        alone, front, again = results
        base = (alone["rps"] + again["rps"]) / 2
        print(f"throughput ratio, front end / upstream alone (mean of both): {front['rps'] / base:.2f}x "
              "(target >= 0.95x)")
        if "front_cpu_ms" in front:
            print(f"front end CPU per request: {front['front_cpu_ms']:.1f} ms (all its threads)")
    else:
        on, off = results
        print(f"throughput ratio, batching on / off: {on['rps'] / off['rps']:.2f}x (target >= 2x)")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
