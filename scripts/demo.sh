#!/usr/bin/env bash
# The demo: three Node.js instances of demo/app.js on 127.0.0.2–4:3000 and edge-router in front of
# them on 127.0.0.1:8443 (HTTPS) and :8080 (HTTP), with a local dev CA. Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

echo "Building edge-router (release)…"
binary="$(scripts/build-release.sh)"

mkdir -p run
scripts/dev-certs.sh run app.demo.test '*.demo.test' >/dev/null
[[ -s run/admin.token ]] || { openssl rand -hex 24 > run/admin.token; chmod 600 run/admin.token; }

pids=()
stop_all() {
    trap - INT TERM EXIT
    echo
    echo "Stopping demo…"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

for n in 2 3 4; do
    node demo/app.js "127.0.0.$n" 3000 "instance-$n" &
    pids+=($!)
done

"$binary" check --config Configs/demo.yaml
"$binary" run --config Configs/demo.yaml &
pids+=($!)

# Wait until the gateway answers (or died).
for _ in $(seq 1 100); do
    curl -s -o /dev/null --cacert run/ca.pem --resolve app.demo.test:8443:127.0.0.1 https://app.demo.test:8443/ && break
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "edge-router exited; see the log above" >&2; exit 1; }
    sleep 0.1
done

cat <<MSG

edge-router is running: HTTPS on 127.0.0.1:8443, HTTP on 127.0.0.1:8080, three instances behind it.
Try (each answer says which instance served it):

  curl --cacert run/ca.pem --resolve app.demo.test:8443:127.0.0.1 https://app.demo.test:8443/
  curl --cacert run/ca.pem --resolve api.demo.test:8443:127.0.0.1 https://api.demo.test:8443/echo
  curl -i --resolve app.demo.test:8080:127.0.0.1 http://app.demo.test:8080/some/path?x=1    # 308 to HTTPS
  curl --resolve plain.demo.test:8080:127.0.0.1 http://plain.demo.test:8080/                # ssl: off, plain HTTP
  for i in \$(seq 6); do curl -s --cacert run/ca.pem --resolve app.demo.test:8443:127.0.0.1 https://app.demo.test:8443/; done

Ctrl-C stops the gateway and the instances.
MSG
wait "${pids[-1]}"
