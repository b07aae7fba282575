#!/usr/bin/env bash
# Usage: scripts/dev-certs.sh OUTDIR NAME...
#
# Makes a local development CA (OUTDIR/ca.pem, its key OUTDIR/ca-key.pem, mode 0600) unless it exists, and an
# ECDSA P-256 certificate covering NAME... (DNS names, `*.example.com` wildcards or IPv4 addresses), signed by
# it and written in the certificate store layout: OUTDIR/certs/<folder>/{cert.pem,key.pem}, the folder named
# after the first NAME (`*.example.com` -> `_wildcard.example.com`). No meta.json: the store derives it
# (source manual). Trust OUTDIR/ca.pem in clients (curl --cacert, openssl s_client -CAfile).
#
# Idempotent: an existing certificate is kept when it covers exactly these names, was issued by this CA and is
# valid for at least another day; otherwise it is replaced. Needs only the openssl CLI.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 OUTDIR NAME..." >&2
    exit 2
fi
outdir=$1
shift
names=("$@")

for name in "${names[@]}"; do
    if ! [[ "$name" =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
        echo "error: '$name' is not a host name, wildcard (*.example.com) or IPv4 address" >&2
        exit 2
    fi
done

umask 077
mkdir -p "$outdir/certs"
ca_cert="$outdir/ca.pem"
ca_key="$outdir/ca-key.pem"

if [ ! -s "$ca_cert" ] || [ ! -s "$ca_key" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$ca_key" -out "$ca_cert" -days 3650 -subj "/O=edge-router development/CN=edge-router dev CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 600 "$ca_key"
    chmod 644 "$ca_cert"
    echo "created dev CA $ca_cert"
fi

first=$(printf '%s' "${names[0]}" | tr 'A-Z' 'a-z')
folder=${first/#\*./_wildcard.}
target="$outdir/certs/$folder"

san=""
for name in "${names[@]}"; do
    name=$(printf '%s' "$name" | tr 'A-Z' 'a-z')
    if [[ "$name" =~ ^[0-9]+(\.[0-9]+){3}$ ]]; then entry="IP Address:$name"; else entry="DNS:$name"; fi
    san="${san:+$san, }$entry"
done

if [ -s "$target/cert.pem" ] && [ -s "$target/key.pem" ]; then
    current_san=$(openssl x509 -in "$target/cert.pem" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | sed 's/^ *//')
    if [ "$current_san" = "$san" ] \
        && openssl verify -CAfile "$ca_cert" "$target/cert.pem" >/dev/null 2>&1 \
        && openssl x509 -in "$target/cert.pem" -noout -checkend 86400 >/dev/null 2>&1; then
        echo "up to date: $target"
        exit 0
    fi
fi

# Built in a hidden folder beside the target (which the store ignores), then swapped in.
work=$(mktemp -d "$outdir/certs/.$folder.new-XXXXXXXX")
trap 'rm -rf "$work"' EXIT
ext_san=$(printf '%s' "$san" | sed 's/IP Address:/IP:/g')
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
    "$ext_san" > "$work/leaf.ext"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$work/key.pem" -out "$work/leaf.csr" -subj "/CN=$first" 2>/dev/null
openssl x509 -req -in "$work/leaf.csr" -CA "$ca_cert" -CAkey "$ca_key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 90 -extfile "$work/leaf.ext" -out "$work/cert.pem" 2>/dev/null
rm -f "$work/leaf.csr" "$work/leaf.ext"
chmod 600 "$work/key.pem"
chmod 644 "$work/cert.pem"
chmod 755 "$work"

if [ -d "$target" ]; then
    old="$outdir/certs/.$folder.old-$(openssl rand -hex 4)"
    mv "$target" "$old"
    mv "$work" "$target"
    rm -rf "$old"
else
    mv "$work" "$target"
fi
trap - EXIT
echo "issued $target ($san)"
