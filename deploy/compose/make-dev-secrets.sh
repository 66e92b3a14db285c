#!/bin/sh
# Development secrets for deploy/compose: a private CA, a TLS certificate for localhost/haproxy signed by it,
# and the demo manage app's signing key with its public JWKS. Writes ./secrets/ (git-ignored). Never use these
# in production: there the certificate comes from your CA and the manage app's keys from the manage app.
#
#   ./make-dev-secrets.sh [--force] [--out DIR]     (DIR defaults to ./secrets next to this script)
set -eu
out="$(dirname "$0")/secrets"
force=no
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=yes; shift ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    *) echo "usage: $0 [--force] [--out DIR]" >&2; exit 2 ;;
  esac
done
umask 077
mkdir -p "$out"
if [ -e "$out/tls.pem" ] && [ "$force" != yes ]; then
  echo "$out already holds secrets; run with --force to replace them" >&2
  exit 1
fi

# TLS: CA (tls-ca.pem, given to clients that must trust it, e.g. the gateway's NODE_EXTRA_CA_CERTS) and a
# server certificate whose names cover the browser (localhost) and containers (haproxy).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
  -subj "/CN=ScanRelay development CA" -keyout "$out/tls-ca.key" -out "$out/tls-ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$out/tls.key" -out "$out/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,DNS:haproxy,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$out/tls.ext"
openssl x509 -req -in "$out/tls.csr" -CA "$out/tls-ca.pem" -CAkey "$out/tls-ca.key" -CAcreateserial \
  -days 825 -extfile "$out/tls.ext" -out "$out/tls.crt" 2>/dev/null
# HAProxy wants certificate chain and key in one PEM.
cat "$out/tls.crt" "$out/tls-ca.pem" "$out/tls.key" > "$out/tls.pem"
rm -f "$out/tls.csr" "$out/tls.ext" "$out/tls-ca.srl"

# Manage app signing key (ES256): private JWK for the demo app, public JWKS for relays and gateways.
# kid = the key's RFC 7638 thumbprint, which is also what the demo manage app signs with.
gen='const {createHash,generateKeyPairSync}=require("node:crypto");const fs=require("node:fs");
const {privateKey,publicKey}=generateKeyPairSync("ec",{namedCurve:"P-256"});
const pub=publicKey.export({format:"jwk"});
const kid=createHash("sha256").update(JSON.stringify({crv:pub.crv,kty:pub.kty,x:pub.x,y:pub.y})).digest("base64url");
const meta={kid,alg:"ES256",use:"sig"};
fs.writeFileSync(process.argv[1]+"/manage-key.json",JSON.stringify({...privateKey.export({format:"jwk"}),...meta}));
fs.writeFileSync(process.argv[1]+"/manage-jwks.json",JSON.stringify({keys:[{...pub,...meta}]}));'
if command -v node >/dev/null 2>&1; then
  node -e "$gen" "$out"
else
  docker run --rm -u "$(id -u):$(id -g)" -v "$(cd "$out" && pwd):/out" node:24-trixie-slim node -e "$gen" /out
fi
# Containers run as other users; they must be able to read the mounted files.
chmod 0644 "$out/manage-jwks.json" "$out/tls-ca.pem"
chmod 0644 "$out/tls.pem" "$out/manage-key.json"
echo "wrote $(ls "$out" | tr '\n' ' ')"
