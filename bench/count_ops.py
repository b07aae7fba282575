#!/usr/bin/env python3
"""Work per request counted, not timed: Swift reference-count operations and allocations per unit of load.

This machine has no hardware counters and valgrind crashes on the release binary, and CPU time per request
moves by more between rounds than one optimisation changes it. So changes to the request path are shown by
counts: uprobes on the Swift runtime's `swift_retain`, `swift_release` and `swift_allocObject`, counted by
`perf stat` while a fixed load runs (nothing is lost to sampling), divided by the requests, streams or
connections the load made. Counts move by a few operations between runs (the batching of reads under load).

Usage (as root; see bench/count-ops.sh, which builds the tree and makes the certificates):
    count_ops.py --certs DIR --binary NAME=PATH [--binary NAME=PATH ...] [--loads keepalive,h2,resume,full]

Loads, each against three Node.js instances on 127.0.0.2-4 (bench/upstream.js), after a warm-up:
    keepalive  wrk -t1 -c8 -d3s                    per request
    h2         h2load -t1 -c4 -m8 -n 30000          per stream
    resume     bench/handshake_load.py, 4 s, 1 worker, a TLS 1.3 ticket per connection   per connection
    full       the same without resumption          per connection
"""

import argparse
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import bench
from bench import NODE_PORT, SERVER_NAME, Started

EVENTS = {"retain": "swift_retain", "release": "swift_release", "alloc": "swift_allocObject"}


def swift_core_library(binary):
    """The libswiftCore.so the binary loads (the probes go on its functions)."""
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        if "libswiftCore.so" in line and "=>" in line:
            return line.split("=>")[1].split("(")[0].strip()
    raise SystemExit(f"{binary} does not load libswiftCore.so dynamically")


def ensure_probes(library):
    """Adds the uprobes that are missing; returns their perf event names and those this run added."""
    listed = subprocess.run(["perf", "probe", "-l"], capture_output=True, text=True).stdout
    group = "probe_" + re.sub(r"[^A-Za-z0-9_]", "_", Path(library).name.split(".")[0])
    added = []
    for function in EVENTS.values():
        event = f"{group}:{function}"
        if event not in listed:
            subprocess.run(["perf", "probe", "-q", "-x", library, function], check=True)
            added.append(event)
    return {key: f"{group}:{function}" for key, function in EVENTS.items()}, added


def run_load(load, port, ca, warm_up=False):
    """Runs one load; returns the requests, streams or connections it completed, from its own report."""
    url = f"https://{SERVER_NAME}:{port}/"
    if load == "keepalive":
        output = subprocess.run(["wrk", "-t1", "-c8", "-d1s" if warm_up else "-d3s", url],
                                capture_output=True, text=True, timeout=60).stdout
        return int(re.search(r"(\d+) requests in", output).group(1))
    if load == "h2":
        output = subprocess.run(["h2load", "-t1", "-c4", "-m8", "-n", "30000", url],
                                capture_output=True, text=True, timeout=120).stdout
        return int(re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", output).group(1))
    return bench.run_handshakes(port, ca, 1 if warm_up else 4, 1, load == "resume")["requests"]


def count(pid, events, load, port, ca):
    run_load(load, port, ca, warm_up=True)
    with tempfile.NamedTemporaryFile("r", suffix=".perf-stat") as stat_file:
        stat = subprocess.Popen(["perf", "stat", "-x,", "-o", stat_file.name, "-p", str(pid)]
                                + [arg for event in events.values() for arg in ("-e", event)])
        time.sleep(0.5)
        made = run_load(load, port, ca)
        time.sleep(0.3)
        stat.send_signal(signal.SIGINT)
        stat.wait(timeout=30)
        totals = {}
        for line in Path(stat_file.name).read_text().splitlines():
            fields = line.split(",")
            for key, event in events.items():
                if len(fields) > 2 and fields[2] == event:
                    totals[key] = int(fields[0])
    if made == 0 or len(totals) != len(events):
        raise SystemExit(f"{load}: no result ({made} completed, counts {totals})")
    return {key: value / made for key, value in totals.items()} | {"units": made}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certs", required=True, type=Path)
    parser.add_argument("--binary", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--loads", default="keepalive,h2,resume")
    args = parser.parse_args()
    builds = [entry.split("=", 1) if "=" in entry else (Path(entry).name, entry) for entry in args.binary]
    loads = args.loads.split(",")
    ca = args.certs / "ca.pem"
    events, added = ensure_probes(swift_core_library(builds[0][1]))

    work = Path(tempfile.mkdtemp(prefix="edge-router-count-"))
    Started.log_dir = work
    port = bench.TARGETS["edge-router"]
    try:
        for ip in bench.INSTANCES:
            Started(f"node-{ip}", ["node", str(bench.HERE / "upstream.js"), ip, str(NODE_PORT)])
        time.sleep(1)
        bench.write_configs(work, args.certs, NODE_PORT)
        for name, binary in builds:
            target = bench.start_target("edge-router", work, binary)
            bench.wait_until_answering(target, port, ca)
            for load in loads:
                result = count(target.pid, events, load, port, ca)
                print(f"{name:12} {load:9} retain+release {result['retain'] + result['release']:7.1f}  "
                      f"allocations {result['alloc']:5.1f}  per {'stream' if load == 'h2' else 'connection' if load in ('resume', 'full') else 'request'}"
                      f"  ({result['units']} counted)", flush=True)
            target.stop()
    finally:
        Started.stop_all()
        for event in added:
            subprocess.run(["perf", "probe", "-q", "-d", event], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
