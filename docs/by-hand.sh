#!/usr/bin/env bash
# The README's "By hand" recipe, as a script: the dev token service, a demo app
# and jwt-sidecar in front of it, all on 127.0.0.1, then one refused and one
# allowed request. Run `make build` first, then `bash docs/by-hand.sh` from the
# repository root. The lines between the markers are the README's block, word
# for word (docs/docs_test.go checks it, and runs this script).
set -eu
trap 'kill $(jobs -p) 2>/dev/null' EXIT
# recipe:begin
# 1. The dev token service: issuer http://127.0.0.1:8080, audience demo-api,
#    client demo:demo-secret (never use it in production).
ISSUER_URL=http://127.0.0.1:8080 LISTEN_ADDR=127.0.0.1:8080 bin/jwt-issuer serve &

# 2. The app: it answers with what it received. Yours listens on 127.0.0.1 too.
LISTEN_ADDR=127.0.0.1:3000 bin/echo-upstream &

# 3. jwt-sidecar in front of it, trusting that issuer.
UPSTREAM_URL=http://127.0.0.1:3000 \
OIDC_ISSUER_URL=http://127.0.0.1:8080 \
AUDIENCES=demo-api \
CLAIMS_TO_HEADERS=sub=X-Auth-Subject,client_id=X-Auth-Client \
LISTEN_ADDR=127.0.0.1:7070 ADMIN_ADDR=127.0.0.1:7071 LOG_FORMAT=text \
bin/jwt-sidecar &
until curl -sf http://127.0.0.1:7071/readyz; do sleep 0.2; done   # keys loaded

# 4. A token, then a request without it (401) and with it (200).
TOKEN=$(curl -s -u demo:demo-secret -d grant_type=client_credentials \
  http://127.0.0.1:8080/token | sed -n 's/.*"access_token": *"\([^"]*\)".*/\1/p')
curl -i http://127.0.0.1:7070/hello
curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:7070/hello
# The app saw X-Auth-Subject: demo, X-Auth-Client: demo, and no Authorization header.
# recipe:end
