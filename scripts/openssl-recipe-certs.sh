#!/usr/bin/env bash
# Write, into DIR, certificates made with the openssl CLI the way users make them: the
# recipe in the docstring of upstream RPyC's tests/test_ssl.py, plus shapes our TLS tests
# need to prove nothing else got looser. Used by scripts/upstream-suite.sh (fresh
# certificates for upstream's test_ssl.py) and by tests/tls_certs.py (make_openssl_pki).
#
#   scripts/openssl-recipe-certs.sh DIR
#
# Upstream's recipe (key size 2048 instead of 4096, for speed; the shapes are the same):
#   server.key/.crt    `openssl req -new -x509`: self-signed, v3, basicConstraints CA:TRUE,
#                      no subjectAltName (CN=localhost): both the server's certificate and
#                      the CA of the clients
#   client.key/.crt    `openssl x509 -req` signed by server.crt: X.509 v1 (CN=client)
#   client2.key/.crt   v1, signed by client.crt (a v1 certificate that is not self-signed
#                      cannot issue: refused by OpenSSL and by us)
#   client-server.bundle.crt   client.crt + server.crt
# Negative and extra shapes (ours):
#   stranger.crt, stranger-client.crt   another self-signed CA, and a v1 client it signed
#   impostor.crt, forged-client.crt     a CA with server.crt's very name but another key,
#                                       and a v1 client it signed (issuer name matches
#                                       server.crt, signature does not)
#   expired-client.crt                  v1, signed by server.crt, expired yesterday
#   wronghost.crt                       like server.crt but CN=example.invalid
#   v1-self.crt                         a self-signed v1 certificate (CN=localhost,
#                                       `openssl x509 -req -signkey`)
# Every NAME.crt has its NAME.key.
set -euo pipefail
[ $# -eq 1 ] || { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
mkdir -p "$1"
cd "$1"
days=30

# openssl chats on stderr even when it succeeds: show its output only when it fails.
run() {
  local out
  out=$("$@" 2>&1) || { echo "openssl failed: $*" >&2; echo "$out" >&2; exit 1; }
}
key() { run openssl genrsa -out "$1.key" 2048; }
csr() { key "$1"; run openssl req -new -key "$1.key" -out "$1.csr" -subj "$2"; }
self_signed() { key "$1"; run openssl req -new -x509 -key "$1.key" -out "$1.crt" -subj "$2" -days "$days"; }
# sign NAME CA [DAYS]: NAME.csr signed by CA.crt/CA.key, as `openssl x509 -req` does (v1)
sign() { run openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -out "$1.crt" -days "${3:-$days}"; }

self_signed server "/CN=localhost"
csr client "/CN=client"; sign client server
csr client2 "/CN=client2"; sign client2 client
cat client.crt server.crt > client-server.bundle.crt

self_signed stranger "/CN=stranger"
csr stranger-client "/CN=stranger client"; sign stranger-client stranger
self_signed impostor "/CN=localhost"
csr forged-client "/CN=forged client"; sign forged-client impostor
csr expired-client "/CN=expired client"; sign expired-client server -1
self_signed wronghost "/CN=example.invalid"
csr v1-self "/CN=localhost"
run openssl x509 -req -in v1-self.csr -signkey v1-self.key -out v1-self.crt -days "$days"
rm -f ./*.csr ./*.srl
