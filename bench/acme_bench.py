#!/usr/bin/env python3
"""ACME bench: edge-router vs Caddy against the same local Pebble (all on 127.0.0.1).

Each run starts a fresh Pebble + pebble-challtestsrv (same settings every time), then one contender:
  (a) start: process start -> the first `ssl: auto` / automatic-HTTPS certificate is served and verifies
      against Pebble's issuing root (with the host name checked);
  (b) add:   on the running server, a domain that was plain HTTP only is switched to automatic HTTPS
      (edge-router: `edge-router ssl NAME auto --config FILE`; Caddy: `caddy reload` with a Caddyfile in
      which `http://NAME` became `NAME`) -> its certificate is served and verifies.
Every process is stopped by PID; every temp dir is removed; every wait has a deadline.
Run through bench/acme-bench.sh, which builds the release binary first.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

FIRST = "first.bench.test"
ADDED = "added.bench.test"


class BenchError(Exception):
    pass


# --- processes -------------------------------------------------------------------------------

class Processes:
    """Every process this bench starts, stopped by PID (SIGTERM, then SIGKILL after a grace)."""

    def __init__(self):
        self.running = []

    def start(self, argv, log_path, env=None, cwd=None):
        log = open(log_path, "wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, cwd=cwd)
        log.close()
        self.running.append(process)
        return process

    def stop(self, process, grace=5.0):
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if process in self.running:
            self.running.remove(process)

    def stop_all(self):
        for process in reversed(list(self.running)):
            self.stop(process)


def free_ports(count):
    """Ports free on 127.0.0.1 right now (bound to 0 together, read, released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run(argv, timeout=30, env=None):
    result = subprocess.run(argv, capture_output=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {result.returncode}: "
                         f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}")
    return result.stdout.decode(errors="replace")


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


# --- serving checks --------------------------------------------------------------------------

def served_openssl(port, name, root):
    """One `openssl s_client` handshake: True when the served chain verifies against `root` for `name`."""
    try:
        result = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, "-CAfile", root,
             "-verify_return_error", "-verify_hostname", name],
            capture_output=True, stdin=subprocess.DEVNULL, timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and b"Verify return code: 0 (ok)" in result.stdout


def served_inprocess(port, name, root):
    """The same check in this process (Python's ssl, OpenSSL underneath): no process spawn per probe."""
    context = ssl.create_default_context(cafile=root)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            with context.wrap_socket(raw, server_hostname=name):
                return True
    except (OSError, ssl.SSLError):
        return False


def wait_served(probe, port, name, root, timeout, interval, process, log_path):
    """Polls until `name` is served with a verified certificate; returns the monotonic time it was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe(port, name, root):
            return time.monotonic()
        if process.poll() is not None:
            raise BenchError(f"server exited ({process.returncode}) before serving {name}:\n{tail(log_path)}")
        time.sleep(interval)
    raise BenchError(f"{name} not served with a verified certificate within {timeout} s:\n{tail(log_path)}")


def served_summary(port, name, root):
    """Final confirmation with openssl s_client: issuer and serial of the served leaf."""
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, "-CAfile", root,
         "-verify_return_error", "-verify_hostname", name],
        capture_output=True, stdin=subprocess.DEVNULL, timeout=10).stdout.decode(errors="replace")
    if "Verify return code: 0 (ok)" not in out:
        raise BenchError(f"final openssl s_client check failed for {name}:\n{out[-2000:]}")
    leaf = out.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
    pem = "-----BEGIN CERTIFICATE-----" + leaf + "-----END CERTIFICATE-----\n"
    info = subprocess.run(["openssl", "x509", "-noout", "-issuer", "-serial"], input=pem.encode(),
                          capture_output=True, timeout=10).stdout.decode().strip().replace("\n", ", ")
    return info


# --- Pebble ----------------------------------------------------------------------------------

class Pebble:
    """Pebble + mock DNS on loopback, validating on `http_port` / `tls_port` (the contender's listeners)."""

    def __init__(self, directory, processes, http_port, tls_port):
        self.directory = directory
        path = lambda name: os.path.join(directory, name)
        self.listener_ca = path("listener-ca.pem")
        self.issuing_root = path("issuing-root.pem")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        run(["openssl", "req", "-x509", *ec, "-keyout", path("ca.key"), "-out", self.listener_ca,
             "-days", "2", "-subj", "/CN=pebble listener CA"])
        run(["openssl", "req", *ec, "-keyout", path("localhost.key"), "-out", path("localhost.csr"),
             "-subj", "/CN=localhost"])
        with open(path("ext.cnf"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        run(["openssl", "x509", "-req", "-in", path("localhost.csr"), "-CA", self.listener_ca, "-CAkey", path("ca.key"),
             "-CAcreateserial", "-out", path("localhost.pem"), "-days", "2", "-extfile", path("ext.cnf")])
        acme, management, dns, dns_management = free_ports(4)
        self.directory_url = f"https://127.0.0.1:{acme}/dir"
        with open(path("pebble.json"), "w") as f:
            json.dump({"pebble": {
                "listenAddress": f"127.0.0.1:{acme}", "managementListenAddress": f"127.0.0.1:{management}",
                "certificate": path("localhost.pem"), "privateKey": path("localhost.key"),
                "httpPort": http_port, "tlsPort": tls_port,
                "ocspResponderURL": "", "externalAccountBindingRequired": False,
                "certificateValidityPeriod": 157766400,
            }}, f)
        processes.start(["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                         "-dns01", f"127.0.0.1:{dns}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                         "-management", f"127.0.0.1:{dns_management}"], path("challtestsrv.log"))
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
        self.log = path("pebble.log")
        self.process = processes.start(["pebble", "-config", path("pebble.json"), "-dnsserver", f"127.0.0.1:{dns}",
                                        "-strict=false"], self.log, env=env)
        context = ssl.create_default_context(cafile=self.listener_ca)
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(self.directory_url, context=context, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise BenchError(f"Pebble did not answer within 15 s:\n{tail(self.log)}")
                time.sleep(0.05)
        root = urllib.request.urlopen(f"https://127.0.0.1:{management}/roots/0", context=context, timeout=5).read()
        with open(self.issuing_root, "wb") as f:
            f.write(root)


# --- contenders ------------------------------------------------------------------------------

def edge_router_run(args, directory, processes, probe):
    http, https, admin, backend = free_ports(4)
    pebble = Pebble(directory, processes, http, https)
    path = lambda name: os.path.join(directory, name)
    with open(path("admin.token"), "w") as f:
        f.write(f"bench-{os.getpid()}-{time.time_ns()}\n")
    os.chmod(path("admin.token"), 0o600)
    config = path("gateway.yaml")
    with open(config, "w") as f:
        f.write(f"""# ACME bench
listen:
  https: 127.0.0.1:{https}
  http: 127.0.0.1:{http}
admin:
  listen: 127.0.0.1:{admin}
  tokenFile: {path("admin.token")}
certificates:
  directory: {path("certs")}
acme:
  directory: {pebble.directory_url}
  caBundle: {pebble.listener_ca}
timeouts:
  drain: 1s
services:
  - name: app
    ports:
      - {{ port: {backend}, http: true }}
    instances: [127.0.0.2]
domains:
  - {{ name: {FIRST}, service: app, port: {backend}, ssl: auto }}
  - {{ name: {ADDED}, service: app, port: {backend}, ssl: off }}
""")
    log = path("edge-router.log")
    started = time.monotonic()
    process = processes.start([args.binary, "run", "--config", config], log)
    first = wait_served(probe, https, FIRST, pebble.issuing_root, args.timeout, args.interval, process, log)
    toggled = time.monotonic()
    run([args.binary, "ssl", ADDED, "auto", "--config", config], timeout=args.timeout)
    added = wait_served(probe, https, ADDED, pebble.issuing_root, args.timeout, args.interval, process, log)
    checks = [served_summary(https, FIRST, pebble.issuing_root), served_summary(https, ADDED, pebble.issuing_root)]
    processes.stop(process)
    return first - started, added - toggled, checks


def caddyfile(pebble, http, https, admin, storage, added_https):
    added_site = ADDED if added_https else f"http://{ADDED}"
    return f"""{{
	admin 127.0.0.1:{admin}
	acme_ca {pebble.directory_url}
	acme_ca_root {pebble.listener_ca}
	email ops@example.com
	http_port {http}
	https_port {https}
	default_bind 127.0.0.1
	skip_install_trust
	storage file_system {storage}
}}

{FIRST} {{
	respond "ok"
}}

{added_site} {{
	respond "ok"
}}
"""


def caddy_run(args, directory, processes, probe):
    http, https, admin = free_ports(3)
    pebble = Pebble(directory, processes, http, https)
    path = lambda name: os.path.join(directory, name)
    home = path("caddy-home")
    os.makedirs(home)
    # Caddy keeps its state under HOME / XDG dirs: a fresh one per run, inside the temp dir.
    env = dict(os.environ, HOME=home, XDG_DATA_HOME=os.path.join(home, "data"),
               XDG_CONFIG_HOME=os.path.join(home, "config"))
    before, after = path("Caddyfile"), path("Caddyfile.added")
    with open(before, "w") as f:
        f.write(caddyfile(pebble, http, https, admin, path("caddy-storage"), added_https=False))
    with open(after, "w") as f:
        f.write(caddyfile(pebble, http, https, admin, path("caddy-storage"), added_https=True))
    log = path("caddy.log")
    started = time.monotonic()
    process = processes.start([args.caddy, "run", "--config", before, "--adapter", "caddyfile"], log, env=env)
    first = wait_served(probe, https, FIRST, pebble.issuing_root, args.timeout, args.interval, process, log)
    toggled = time.monotonic()
    run([args.caddy, "reload", "--config", after, "--adapter", "caddyfile", "--address", f"127.0.0.1:{admin}"],
        timeout=args.timeout, env=env)
    added = wait_served(probe, https, ADDED, pebble.issuing_root, args.timeout, args.interval, process, log)
    checks = [served_summary(https, FIRST, pebble.issuing_root), served_summary(https, ADDED, pebble.issuing_root)]
    processes.stop(process)
    return first - started, added - toggled, checks


CONTENDERS = {"edge-router": edge_router_run, "caddy": caddy_run}


# --- report ----------------------------------------------------------------------------------

def versions(args):
    def first_line(argv):
        try:
            out = subprocess.run(argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
            return (out.stdout or out.stderr).decode(errors="replace").strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    return {
        "edge-router": first_line(["git", "-C", here, "log", "-1", "--format=%h %s"]),
        "caddy": first_line([args.caddy, "version"]),
        "pebble": first_line(["dpkg-query", "-W", "-f", "${Version}", "pebble"]),
        "openssl": first_line(["openssl", "version"]),
        "swift": first_line(["swift", "--version"]),
        "kernel": platform.platform(),
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--binary", required=True, help="the release edge-router binary")
    parser.add_argument("--caddy", default="caddy")
    parser.add_argument("--only", choices=sorted(CONTENDERS), help="run one contender only")
    parser.add_argument("--probe", choices=["openssl", "inprocess"], default="openssl",
                        help="openssl: one `openssl s_client -verify_return_error` per poll (default); "
                             "inprocess: the same verification with Python's ssl, no spawn per poll")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between polls (default 0.02)")
    parser.add_argument("--timeout", type=float, default=30, help="deadline for each wait, seconds")
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (logs) instead of removing them")
    args = parser.parse_args()
    probe = served_openssl if args.probe == "openssl" else served_inprocess

    # SIGTERM / SIGINT: unwind through the finally blocks so every process is stopped and every dir removed.
    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)

    names = [args.only] if args.only else ["edge-router", "caddy"]
    results = {name: {"start": [], "add": []} for name in names}
    info = versions(args)
    info["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    info["load before"] = loadavg()
    info["probe"] = f"{args.probe}, every {args.interval * 1000:.0f} ms"
    for key, value in info.items():
        print(f"# {key}: {value}", flush=True)

    processes = Processes()
    try:
        for round_number in range(1, args.rounds + 1):
            # Alternate which contender goes first, so drift in the machine's load hits both alike.
            order = names if round_number % 2 else list(reversed(names))
            for name in order:
                directory = tempfile.mkdtemp(prefix=f"acme-bench-{name}-")
                try:
                    start, add, checks = CONTENDERS[name](args, directory, processes, probe)
                    results[name]["start"].append(start)
                    results[name]["add"].append(add)
                    print(f"round {round_number} {name:<11} start→served {start:6.3f} s   "
                          f"add→served {add:6.3f} s   load {loadavg()}", flush=True)
                    for check in checks:
                        print(f"    served: {check}", flush=True)
                finally:
                    processes.stop_all()
                    if args.keep:
                        print(f"    kept {directory}", flush=True)
                    else:
                        shutil.rmtree(directory, ignore_errors=True)
    finally:
        processes.stop_all()

    info["load after"] = loadavg()
    print(f"# load after: {info['load after']}")
    labels = {"start": "(a) process start → first certificate served", "add": "(b) domain switched to auto → its certificate served"}
    print()
    print(f"| case | server | n | min | median | max |")
    print(f"| --- | --- | ---: | ---: | ---: | ---: |")
    for case in ("start", "add"):
        for name in names:
            values = results[name][case]
            print(f"| {labels[case]} | {name} | {len(values)} | {min(values):.2f} s | "
                  f"{statistics.median(values):.2f} s | {max(values):.2f} s |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "results": results}, f, indent=2)


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: every process stopped, temp dirs removed", file=sys.stderr)
        sys.exit(130)
