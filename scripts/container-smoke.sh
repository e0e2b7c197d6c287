#!/usr/bin/env bash
# The container image and compose stack, for real, where a container engine runs (the test suite
# cannot: no engine there). Builds the image, starts docker-compose.yml with the opt-in demo
# (docker-compose.demo.yml: dev tokens and the demo organization), waits for /readyz, books once
# with a token minted inside the container, restarts the database, books again, then tears
# everything down (containers, volume, secrets), also on failure.
#
#   scripts/container-smoke.sh                          # docker compose, else docker-compose,
#   COMPOSE=podman-compose scripts/container-smoke.sh   # else podman-compose
#
# Needs on the host: the engine and its compose, python3 and curl. Settings: COMPOSE, API_PORT
# (default 18000, published on 127.0.0.1), SMOKE_TIMEOUT_S (default 180: the longest wait for
# /readyz after a start or the database's restart).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${COMPOSE:-}" ]]; then
  read -r -a compose <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
elif command -v podman-compose >/dev/null 2>&1; then
  compose=(podman-compose)
else
  echo "container-smoke: no docker compose, docker-compose or podman-compose found" >&2
  exit 2
fi

# examples/demo.yaml's demo-partner application.
application=6f1c2a4e-0000-4000-8000-000000000101
timeout_s="${SMOKE_TIMEOUT_S:-180}"
secrets_dir="$(mktemp -d)" # mode 700: only we can open it; the files inside are world-readable
export SECRETS_DIR="$secrets_dir"
export API_PORT="${API_PORT:-18000}"
export API_IMAGE="booking-api:smoke"
IMAGE_REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
export IMAGE_REVISION
base="http://127.0.0.1:${API_PORT}"
compose+=(-p "booking-smoke-$$" -f docker-compose.yml -f docker-compose.demo.yml)

step() { printf '\n== %s\n' "$*"; }

cleanup() {
  local status=$?
  if ((status != 0)); then
    "${compose[@]}" logs --tail 50 api db || true
  fi
  step "tearing down"
  "${compose[@]}" down --volumes --remove-orphans || true
  rm -rf "$secrets_dir"
  exit "$status"
}
trap cleanup EXIT

wait_ready() {
  local deadline=$((SECONDS + timeout_s))
  until curl -fsS "$base/readyz" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "container-smoke: $base/readyz not ready after ${timeout_s} s" >&2
      return 1
    fi
    sleep 1
  done
}

step "secrets in $secrets_dir"
# A password full of URL characters: it broke the stack when compose pasted it into a URL.
printf 'p@ss/w:rd#%s\n' "$(python3 -c 'import secrets; print(secrets.token_hex(8))')" \
  >"$secrets_dir/postgres_password"
python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$secrets_dir/jwt_dev_secret"
chmod 644 "$secrets_dir/postgres_password" "$secrets_dir/jwt_dev_secret" # uid 10001, postgres

step "building the image"
"${compose[@]}" build

step "starting the stack on $base"
"${compose[@]}" up -d
wait_ready

step "minting a token inside the container"
token="$("${compose[@]}" exec -T api booking-api token --application-id "$application" | tail -n 1)"

step "booking"
python3 scripts/smoke_book.py --base-url "$base" --token "$token"

step "restarting the database"
"${compose[@]}" restart db
wait_ready

step "booking again"
python3 scripts/smoke_book.py --base-url "$base" --token "$token" --retry-s 60

step "container-smoke: passed"
