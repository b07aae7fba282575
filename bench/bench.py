#!/usr/bin/env python3
"""edge-router beside nginx, HAProxy and Caddy: the benchmark driver (started by bench/run.sh).

Starts the upstreams (three Node.js instances and a static nginx on 127.0.0.2-4), then, per phase,
the four targets with equivalent configurations; runs the loads interleaved (four rounds, each one
target further on: A B C D, B C D A, C D A B, D A B C, so each target is measured once in each position),
each after the processes are quiet;
reads each target's CPU time and memory from /proc; writes the raw results as JSON and the tables
into docs/BENCHMARKS.md between the `results` markers. Every process it starts it stops by PID.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER_NAME = "localhost"  # wrk sends the URL's host as SNI, and only `localhost` resolves without /etc/hosts edits
INSTANCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
NODE_PORT = 3900
STATIC_PORT = 3901
TARGETS = {  # name -> loopback port of its TLS listener
    "edge-router": 8643,
    "nginx": 8644,
    "haproxy": 8645,
    "caddy": 8646,
}
ANCHORS = ["nginx", "haproxy", "caddy"]
VARIANTS = {}  # name -> binary, from --variant
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# MARK: processes


class Started:
    """A process this driver started; stopped by its PID (SIGTERM, then SIGKILL after a grace)."""

    registry = []
    log_dir = Path(tempfile.gettempdir())

    def __init__(self, name, argv, env=None, stdin=None, stdout=None, cwd=None):
        self.name = name
        self.log_path = None
        if stdout is None:
            self.log_path = Started.log_dir / f"{name}.log"
            stdout = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            argv, env=env, stdin=stdin, stdout=stdout, stderr=subprocess.STDOUT if stdout is not subprocess.PIPE else None,
            cwd=cwd, start_new_session=True,
        )
        self.pid = self.process.pid
        Started.registry.append(self)

    def stop(self):
        if self.process.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        if self in Started.registry:
            Started.registry.remove(self)

    def tail(self):
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""

    @classmethod
    def stop_all(cls):
        for started in reversed(list(cls.registry)):
            started.stop()


def process_tree(pid):
    """pid and every descendant (nginx workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid):
    """(utime, stime) of pid and its descendants, in seconds."""
    user = system = 0
    for p in process_tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        user += int(fields[11])  # utime (field 14)
        system += int(fields[12])  # stime (field 15)
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def memory_kib(pid):
    """(current RSS, sum of each process's peak RSS) of pid and its descendants, in KiB."""
    rss = peak = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak += int(line.split()[1])
    return rss, peak


# MARK: configurations


def write_configs(work, certs, upstream_port):
    cert = certs / "certs" / SERVER_NAME / "cert.pem"
    key = certs / "certs" / SERVER_NAME / "key.pem"
    combined = work / "haproxy.pem"
    combined.write_text(cert.read_text() + key.read_text())
    servers_nginx = "\n".join(f"        server {ip}:{upstream_port};" for ip in INSTANCES)
    (work / "nginx.conf").write_text(f"""
worker_processes 2;
worker_rlimit_nofile 20000;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    # The default (1000) ends every connection, HTTP/2 ones included, after 1000 requests; h2load does
    # not reconnect, and the other targets set no such limit.
    keepalive_requests 1000000;
    client_body_temp_path {work}/nginx-tmp;
    proxy_temp_path {work}/nginx-tmp;
    upstream instances {{
        least_conn;
{servers_nginx}
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{TARGETS['nginx']} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://instances;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }}
    }}
}}
""")
    servers_haproxy = "\n".join(f"    server i{n} {ip}:{upstream_port}" for n, ip in enumerate(INSTANCES))
    (work / "haproxy.cfg").write_text(f"""
global
    nbthread 2
    maxconn 9990
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 60s
    timeout http-keep-alive 60s
frontend front
    bind 127.0.0.1:{TARGETS['haproxy']} ssl crt {combined} alpn h2,http/1.1
    http-request set-header X-Forwarded-Proto https
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend instances
backend instances
    balance leastconn
    http-reuse always
{servers_haproxy}
""")
    upstreams_caddy = " ".join(f"{ip}:{upstream_port}" for ip in INSTANCES)
    (work / "Caddyfile").write_text(f"""
{{
    admin off
    auto_https off
    storage file_system {work}/caddy-data
}}
https://{SERVER_NAME}:{TARGETS['caddy']} {{
    bind 127.0.0.1
    tls {cert} {key}
    reverse_proxy {upstreams_caddy} {{
        lb_policy least_conn
    }}
}}
""")
    (work / "edge-router.yaml").write_text(f"""
listen:
  https: 127.0.0.1:{TARGETS['edge-router']}
  http: 127.0.0.1:{TARGETS['edge-router'] + 100}
certificates:
  directory: {certs / 'certs'}
  default: {SERVER_NAME}
services:
  - name: bench
    ports:
      - {{ port: {upstream_port}, http: true }}
    instances: [{', '.join(INSTANCES)}]
domains:
  - {{ name: {SERVER_NAME}, service: bench, port: {upstream_port}, ssl: manual }}
timeouts:
  # nginx's client_header_timeout default and HAProxy's `timeout http-request` above: with the default
  # 10 s the idle mode's first connections were closed (no request sent) before its last were open.
  requestHeader: 60s
""")
    (work / "nginx-tmp").mkdir(exist_ok=True)
    for name, port in TARGETS.items():  # variants: the same configuration on other ports (A/B of builds)
        if name in VARIANTS:
            text = (work / "edge-router.yaml").read_text()
            text = text.replace(f":{TARGETS['edge-router']}", f":{port}")
            text = text.replace(f":{TARGETS['edge-router'] + 100}", f":{port + 100}")
            (work / f"{name}.yaml").write_text(text)


def start_target(name, work, binary):
    env = dict(os.environ)
    if name in VARIANTS:
        argv = [VARIANTS[name], "run", "--config", str(work / f"{name}.yaml"), "--log-level", "warning"]
    elif name == "edge-router":
        # Access log filtered out (one info line per request otherwise), as the anchors' are off.
        argv = [binary, "run", "--config", str(work / "edge-router.yaml"), "--log-level", "warning"]
    elif name == "nginx":
        argv = ["nginx", "-p", str(work), "-c", str(work / "nginx.conf")]
    elif name == "haproxy":
        argv = ["haproxy", "-db", "-f", str(work / "haproxy.cfg")]
    else:
        env.update(GOMAXPROCS="2", HOME=str(work), XDG_DATA_HOME=str(work), XDG_CONFIG_HOME=str(work))
        argv = ["caddy", "run", "--config", str(work / "Caddyfile"), "--adapter", "caddyfile"]
    return Started(name, argv, env=env)


def wait_until_answering(started, port, ca, seconds=20):
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if started.process.poll() is not None:
            raise SystemExit(f"{started.name} exited ({started.process.returncode}):\n{started.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
                with context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
                    tls.sendall(f"GET / HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n".encode())
                    data = b""
                    while chunk := tls.recv(4096):
                        data += chunk
            if data.startswith(b"HTTP/1.1 200"):
                return
        except (OSError, ssl.SSLError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{started.name} did not answer 200 on port {port} within {seconds}s:\n{started.tail()}")


# MARK: loads


def parse_duration_ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def run_wrk(port, seconds):
    output = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", f"https://{SERVER_NAME}:{port}/"],
        capture_output=True, text=True, timeout=seconds + 30,
    ).stdout
    result = {"requests": int(re.search(r"(\d+) requests in", output).group(1))}
    result["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.M))
    result["p50_ms"] = parse_duration_ms(latency["50"])
    result["p99_ms"] = parse_duration_ms(latency["99"])
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result["errors"] = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    return result


H2LOAD = ["h2load", "-t2", "-c8", "-m16", "--warm-up-time=1"]  # 8 connections × 16 concurrent streams


def run_h2load(port, seconds):
    """HTTP/2 over TLS (ALPN h2): many streams per connection. h2load reports no percentiles: mean and max."""
    output = subprocess.run(
        H2LOAD + [f"-D{seconds}", f"https://{SERVER_NAME}:{port}/"],
        capture_output=True, text=True, timeout=seconds + 30,
    ).stdout
    protocol = re.search(r"Application protocol: (\S+)", output)
    result = {"alpn": protocol.group(1) if protocol else "none"}
    counts = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout", output)
    if not counts:
        raise SystemExit(f"h2load on port {port} gave no results:\n{output}")
    result["requests"] = int(counts.group(4))
    result["rps"] = float(re.search(r"finished in [^,]+, ([\d.]+) req/s", output).group(1))
    times = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", output)
    result["mean_ms"] = parse_duration_ms(times.group(3))
    result["max_ms"] = parse_duration_ms(times.group(2))
    result["errors"] = int(counts.group(5)) + int(counts.group(6)) + int(counts.group(7))
    # The 3xx, 4xx and 5xx answers as h2load counts them ("succeeded" minus 2xx can go negative: h2load
    # counts the status of responses that arrive after the run's end, but not them as succeeded).
    status = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    result["non2xx"] = sum(int(count) for count in status.groups()) if status else 0
    return result


def run_handshakes(port, ca, seconds, workers, resume):
    argv = [sys.executable, str(HERE / "handshake_load.py"), "127.0.0.1", str(port), SERVER_NAME, str(ca),
            str(seconds), str(workers)] + (["--resume"] if resume else [])
    result = json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout)
    result["rps"] = result["requests"] / result["seconds"]
    return result


def settle(pids, quiet_share=0.05, at_most=3.0):
    """Waits, up to `at_most` seconds, until the started processes are quiet (together under
    `quiet_share` of one core over 0.2 s): what one target leaves running after its load (Go's garbage
    collector after Caddy's, connections being torn down, an instance's GC) must not land in the next
    target's measurement. /proc counts in 10 ms ticks, so "quiet" is at most one tick per 0.2 s."""
    deadline = time.monotonic() + at_most
    while time.monotonic() < deadline:
        before = sum(sum(cpu_seconds(pid)) for pid in pids)
        time.sleep(0.2)
        if sum(sum(cpu_seconds(pid)) for pid in pids) - before <= 0.2 * quiet_share:
            return


def rotated(targets, round_):
    """The targets in round `round_`'s order: each round starts one target further on, so no target is
    always the one measured first (right after the warm-ups, or after the previous round's last load)."""
    shift = (round_ - 1) % len(targets)
    return targets[shift:] + targets[:shift]


def measured(pid, load):
    """Runs load(), returning its result plus the target's CPU time per request."""
    user_before, system_before = cpu_seconds(pid)
    result = load()
    user_after, system_after = cpu_seconds(pid)
    user, system = user_after - user_before, system_after - system_before
    result["cpu_s"] = round(user + system, 3)
    requests = result["requests"]
    result["cpu_us_per_req"] = round((user + system) / requests * 1e6, 1) if requests else None
    result["user_us_per_req"] = round(user / requests * 1e6, 1) if requests else None
    return result


def run_idle(started, port, ca, count):
    rss_before, _ = memory_kib(started.pid)
    client = subprocess.Popen(
        [sys.executable, str(HERE / "idle_tls.py"), "127.0.0.1", str(port), SERVER_NAME, str(ca), str(count)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        line = client.stdout.readline().split()
        opened, failed = (int(line[1]), int(line[2])) if len(line) == 3 else (0, count)
        time.sleep(2)  # let the target settle (deferred frees, lazy buffers)
        rss_held, _ = memory_kib(started.pid)
        still_open = established_connections(port)
    finally:
        try:
            client.stdin.write("\n")
            client.stdin.flush()
        except OSError:
            pass
        try:
            client.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(client.pid, signal.SIGKILL)
            client.wait()
    # Per connection the target really holds: one it closed meanwhile (a timeout) is not counted as held.
    held = min(opened, still_open)
    return {
        "opened": opened, "failed": failed, "still_open": still_open,
        "rss_before_kib": rss_before, "rss_held_kib": rss_held,
        "kib_per_conn": round((rss_held - rss_before) / held, 2) if held else None,
    }


def established_connections(port):
    """TCP connections in ESTABLISHED state whose local port is `port` (the target's side)."""
    output = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                            capture_output=True, text=True, timeout=30).stdout
    return sum(1 for line in output.splitlines() if line.strip())


# MARK: the run


def versions(binary):
    def first_line(argv):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            return (done.stdout + done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    return {
        "edge-router": first_line(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"]),
        "nginx": first_line(["nginx", "-v"]),
        "haproxy": first_line(["haproxy", "-v"]),
        "caddy": first_line(["caddy", "version"]),
        "wrk": first_line(["wrk", "-v"]),
        "node": first_line(["node", "--version"]),
        "openssl": first_line(["openssl", "version"]),
        "swift": first_line(["swift", "--version"]),
        "python": platform.python_version(),
    }


def machine():
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 1048576, 1),
            "kernel": platform.release(), "loadavg_start": Path("/proc/loadavg").read_text().split()[:3]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--certs", required=True, type=Path)
    # Four: with four targets, each is measured once in each position of a round.
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10, help="keep-alive run length")
    parser.add_argument("--handshake-seconds", type=int, default=5)
    parser.add_argument("--handshake-workers", type=int, default=4)
    parser.add_argument("--idle", type=int, default=9900,
                        help="idle TLS connections held (HAProxy, at 2 fds per connection, fits 9,990 in 20,000 fds)")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--modes", default="keepalive,h2,handshake,static,idle",
                        help="any of keepalive, handshake, static, idle, h2 (HTTP/2 with h2load)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=BINARY",
                        help="another edge-router build, run as one more target NAME (A/B of a change)")
    parser.add_argument("--keep-work", action="store_true", help="keep the configurations and logs")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--doc", type=Path, help="Markdown file whose results section is rewritten")
    args = parser.parse_args()
    targets = args.targets.split(",")
    for n, variant in enumerate(args.variant):
        name, binary = variant.split("=", 1)
        VARIANTS[name] = binary
        TARGETS[name] = 8647 + n
        targets.append(name)
    modes = args.modes.split(",")
    ca = args.certs / "ca.pem"
    started_at = datetime.datetime.now(datetime.timezone.utc)
    report = {"date": started_at.isoformat(timespec="seconds"), "machine": machine(),
              "versions": versions(args.binary), "settings": vars(args) | {"certs": str(args.certs),
              "json": str(args.json), "doc": str(args.doc)}, "runs": [], "memory": {}}

    work = Path(tempfile.mkdtemp(prefix="edge-router-bench-"))
    Started.log_dir = work
    log(f"work directory {work} (configurations, logs; removed at the end unless --keep-work)")
    upstreams = []
    for ip in INSTANCES:
        upstreams.append(Started(f"node-{ip}", ["node", str(HERE / "upstream.js"), ip, str(NODE_PORT)]))
    static_conf = work / "static-nginx.conf"
    listens = "\n".join(f"        listen {ip}:{STATIC_PORT};" for ip in INSTANCES)
    (work / "static").mkdir()
    static_conf.write_text(f"""
worker_processes 1;
daemon off;
pid {work}/static/nginx.pid;
error_log {work}/static/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {{
{listens}
        location / {{ return 200 "ok"; }}
    }}
}}
""")
    upstreams.append(Started("static-nginx", ["nginx", "-p", str(work / "static"), "-c", str(static_conf)]))
    time.sleep(1)
    for upstream in upstreams:
        if upstream.process.poll() is not None:
            raise SystemExit(f"{upstream.name} exited:\n{upstream.tail()}")

    def phase(label, upstream_port, body):
        write_configs(work, args.certs, upstream_port)
        running = {}
        try:
            for name in targets:
                running[name] = start_target(name, work, args.binary)
            for name in targets:
                wait_until_answering(running[name], TARGETS[name], ca)
            for name in targets:  # warm-up: pools filled, JIT-free but caches and allocators warm
                run_wrk(TARGETS[name], 2)
            body(running)
            for name in targets:
                rss, peak = memory_kib(running[name].pid)
                report["memory"].setdefault(label, {})[name] = {"rss_kib": rss, "peak_kib": peak}
        finally:
            for started in running.values():
                started.stop()

    def record(mode, upstream, round_, target, result):
        entry = {"mode": mode, "upstream": upstream, "round": round_, "target": target} | result
        report["runs"].append(entry)
        log(f"{mode:<16} {upstream:<6} r{round_} {target:<12} "
            + " ".join(f"{k}={v}" for k, v in result.items() if k in
                       ("rps", "p50_ms", "p99_ms", "mean_ms", "max_ms", "alpn", "errors", "non2xx", "cpu_us_per_req",
                        "user_us_per_req", "resumed", "opened", "still_open", "kib_per_conn")))

    try:
        if "keepalive" in modes or "handshake" in modes or "h2" in modes:
            def node_phase(running):
                quiet = [started.pid for started in list(running.values()) + upstreams]
                for round_ in range(1, args.rounds + 1):
                    for name in rotated(targets, round_):
                        pid = running[name].pid
                        if "keepalive" in modes:
                            settle(quiet)
                            record("keepalive", "node", round_, name,
                                   measured(pid, lambda: run_wrk(TARGETS[name], args.seconds)))
                        if "h2" in modes:
                            settle(quiet)
                            record("h2", "node", round_, name,
                                   measured(pid, lambda: run_h2load(TARGETS[name], args.seconds)))
                        if "handshake" in modes:
                            for resume in (False, True):
                                settle(quiet)
                                record("handshake-resume" if resume else "handshake-full", "node", round_, name,
                                       measured(pid, lambda: run_handshakes(
                                           TARGETS[name], ca, args.handshake_seconds, args.handshake_workers, resume)))
            log("phase: Node.js instances")
            phase("node", NODE_PORT, node_phase)
        if "static" in modes:
            def static_phase(running):
                quiet = [started.pid for started in list(running.values()) + upstreams]
                for round_ in range(1, args.rounds + 1):
                    for name in rotated(targets, round_):
                        settle(quiet)
                        record("keepalive", "static", round_, name,
                               measured(running[name].pid, lambda: run_wrk(TARGETS[name], args.seconds)))
            log("phase: static nginx upstream")
            phase("static", STATIC_PORT, static_phase)
        if "idle" in modes:
            def idle_phase(running):
                for name in targets:
                    record("idle", "-", 1, name, run_idle(running[name], TARGETS[name], ca, args.idle))
            log(f"phase: {args.idle} idle TLS connections")
            phase("idle", NODE_PORT, idle_phase)
    finally:
        Started.stop_all()
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)

    report["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    report["elapsed_s"] = round((datetime.datetime.now(datetime.timezone.utc) - started_at).total_seconds())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    markdown = render(report)
    print(markdown)
    if args.doc:
        write_into_doc(args.doc, markdown)
    log(f"done in {report['elapsed_s']}s; raw results in {args.json}")


# MARK: the report


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(value, best, higher_is_better):
    if value is None or not best:
        return "–"
    return f"{value / best:.2f}×"


def fmt(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def round_by_round(rows, figures):
    """edge-router's figure over the best anchor's in the same round, round by round: the spread says how far
    the ratio of medians in the table can be trusted on a shared machine (lower is better for each figure)."""
    parts = []
    for label, key in figures:
        ratios = []
        for round_ in sorted({r["round"] for r in rows}):
            mine = {r["target"]: r.get(key) for r in rows if r["round"] == round_}
            best = min((mine[a] for a in ANCHORS if mine.get(a)), default=None)
            if mine.get("edge-router") is not None and best:
                ratios.append(mine["edge-router"] / best)
        if ratios:
            parts.append(f"{label} {', '.join(f'{x:.2f}×' for x in ratios)} (median {statistics.median(ratios):.2f}×)")
    if not parts:
        return None
    return "Round by round, edge-router ÷ the best anchor in the same round: " + "; ".join(parts) + "."


def render(report):
    runs = report["runs"]
    lines = []
    m = report["machine"]
    lines.append(f"Run {report['date']} on {m['cores']} × {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}; "
                 f"load average {' '.join(m['loadavg_start'])} at start, {' '.join(m.get('loadavg_end', []))} at end; "
                 f"{report['elapsed_s']} s in all. Medians over {report['settings']['rounds']} interleaved rounds.")
    lines.append("")
    lines.append("Versions: " + "; ".join(f"{k} `{v}`" for k, v in report["versions"].items()) + ".")
    lines.append("")
    groups = [("keepalive", "node", "Keep-alive HTTPS, Node.js instances (`wrk -t2 -c64 -d10s --latency`)"),
              ("keepalive", "static", "Keep-alive HTTPS, static nginx upstream (proxy-bound)"),
              ("handshake-full", "node", "New TLS connection per request, full handshake"),
              ("handshake-resume", "node", "New TLS connection per request, session resumption (TLS 1.3 ticket)")]
    for mode, upstream, title in groups:
        rows = [r for r in runs if r["mode"] == mode and r["upstream"] == upstream]
        if not rows:
            continue
        lines.append(f"**{title}**")
        lines.append("")
        extra = " | resumed" if mode == "handshake-resume" else ""
        lines.append(f"| target | req/s | p50 ms | p99 ms | errors | non-2xx | CPU µs/req | of which user{extra} |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if extra else ""))
        summary = {}
        for target in TARGETS:
            mine = [r for r in rows if r["target"] == target]
            if not mine:
                continue
            s = {
                "rps": median([r["rps"] for r in mine]),
                "p50": median([r["p50_ms"] for r in mine]),
                "p99": median([r["p99_ms"] for r in mine]),
                "errors": sum(r["errors"] for r in mine),
                "non2xx": sum(r["non2xx"] for r in mine),
                "cpu": median([r["cpu_us_per_req"] for r in mine]),
                "user": median([r.get("user_us_per_req") for r in mine]),
                "resumed": f"{sum(r.get('resumed', 0) for r in mine)}/{sum(r['requests'] for r in mine)}",
            }
            summary[target] = s
            resumed = f" | {s['resumed']}" if extra else ""
            lines.append(f"| {target} | {fmt(s['rps'], 0)} | {fmt(s['p50'], 2)} | {fmt(s['p99'], 2)} | "
                         f"{s['errors']} | {s['non2xx']} | {fmt(s['cpu'])} | {fmt(s['user'])}{resumed} |")
        anchors = [summary[a] for a in ANCHORS if a in summary]
        if "edge-router" in summary and anchors:
            e = summary["edge-router"]
            best_rps = max(a["rps"] for a in anchors)
            best_p99 = min(a["p99"] for a in anchors)
            best_cpu = min(a["cpu"] for a in anchors if a["cpu"] is not None)
            lines.append(f"| *edge-router ÷ best anchor* | {ratio(e['rps'], best_rps, True)} | | "
                         f"{ratio(e['p99'], best_p99, False)} | | | {ratio(e['cpu'], best_cpu, False)} |"
                         + (" |" if extra else "") + " |")
            if spread := round_by_round(rows, [("CPU per request", "cpu_us_per_req"), ("p99", "p99_ms")]):
                lines += ["", spread]
        lines.append("")
    h2 = [r for r in runs if r["mode"] == "h2"]
    if h2:
        lines.append(f"**HTTP/2 over TLS, Node.js instances (`{' '.join(H2LOAD)} -D{report['settings']['seconds']}`; "
                     "h2load gives mean and max, no percentiles)**")
        lines.append("")
        lines.append("| target | ALPN | req/s | mean ms | max ms | errors | non-2xx | CPU µs/req | of which user |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        summary = {}
        for target in TARGETS:
            mine = [r for r in h2 if r["target"] == target]
            if not mine:
                continue
            s = {"rps": median([r["rps"] for r in mine]), "mean": median([r["mean_ms"] for r in mine]),
                 "max": max(r["max_ms"] for r in mine), "cpu": median([r["cpu_us_per_req"] for r in mine]),
                 "user": median([r.get("user_us_per_req") for r in mine])}
            summary[target] = s
            lines.append(f"| {target} | {mine[0]['alpn']} | {fmt(s['rps'], 0)} | {fmt(s['mean'], 2)} | "
                         f"{fmt(s['max'], 2)} | {sum(r['errors'] for r in mine)} | {sum(r['non2xx'] for r in mine)} | "
                         f"{fmt(s['cpu'])} | {fmt(s['user'])} |")
        anchors = [summary[a] for a in ANCHORS if a in summary]
        if "edge-router" in summary and anchors:
            e = summary["edge-router"]
            lines.append(f"| *edge-router ÷ best anchor* | | {ratio(e['rps'], max(a['rps'] for a in anchors), True)} | "
                         f"{ratio(e['mean'], min(a['mean'] for a in anchors), False)} | | | | "
                         f"{ratio(e['cpu'], min(a['cpu'] for a in anchors if a['cpu'] is not None), False)} | |")
            if spread := round_by_round(h2, [("CPU per request", "cpu_us_per_req"), ("mean latency", "mean_ms")]):
                lines += ["", spread]
        lines.append("")
    idle = {r["target"]: r for r in runs if r["mode"] == "idle"}
    memory = report["memory"]
    if idle or memory:
        lines.append("**Memory** (RSS of all the target's processes; peak = sum of each process's VmHWM)")
        lines.append("")
        lines.append("| target | RSS after keep-alive runs MiB | peak RSS MiB (keep-alive phase) | "
                     f"idle TLS connections held | KiB per idle connection | peak RSS MiB (idle phase) |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for target in TARGETS:
            node = memory.get("node", {}).get(target, {})
            held = memory.get("idle", {}).get(target, {})
            i = idle.get(target, {})
            if not node and not i:
                continue
            mib = lambda kib: fmt(kib / 1024, 1) if kib else "–"
            lines.append(f"| {target} | {mib(node.get('rss_kib'))} | {mib(node.get('peak_kib'))} | "
                         f"{fmt(min(i['opened'], i.get('still_open', i['opened'])) if i else None)} | {fmt(i.get('kib_per_conn'))} | {mib(held.get('peak_kib'))} |")
        anchors = [idle[a]["kib_per_conn"] for a in ANCHORS if a in idle and idle[a]["kib_per_conn"]]
        if "edge-router" in idle and anchors and idle["edge-router"]["kib_per_conn"]:
            lines.append(f"| *edge-router ÷ best anchor* | | | | {idle['edge-router']['kib_per_conn'] / min(anchors):.2f}× | |")
        lines.append("")
    return "\n".join(lines)


def write_into_doc(doc, markdown):
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    text = doc.read_text() if doc.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{begin}\n{markdown}\n{end}{tail}")


if __name__ == "__main__":
    try:
        main()
    finally:
        Started.stop_all()
