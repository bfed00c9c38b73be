#!/bin/sh
# referral.sh: the exchange's JSON face with curl, nothing else.
#   referral.sh send REFERRAL.json SEALED_BLOB REQUEST_ID   create a referral
#   referral.sh list [inbox|outbox]                          list referrals
#   referral.sh get NAME                                     read one
#   referral.sh act NAME acknowledge|accept|start            move it on
# Environment: EXCHANGE_URL (https://host:7443), EXCHANGE_CERT,
# EXCHANGE_KEY and EXCHANGE_CA (the agency's certificate, its key, and the
# exchange's CA certificate). Answers are JSON on standard output; an error
# is a google.rpc.Status in JSON on standard error, and the exit status is 1.
set -eu
call() { # call METHOD PATH [BODY]
  out=$(mktemp)
  trap 'rm -f "$out"' EXIT
  code=$(curl --silent --show-error --cert "$EXCHANGE_CERT" --key "$EXCHANGE_KEY" --cacert "$EXCHANGE_CA" \
    --request "$1" --header 'Content-Type: application/json' ${3:+--data-binary "$3"} \
    --output "$out" --write-out '%{http_code}' "$EXCHANGE_URL$2")
  if [ "$code" -ge 200 ] && [ "$code" -lt 300 ]; then cat "$out"; else cat "$out" >&2; exit 1; fi
}
case "$1" in
send)
  # The identifying details are sealed beforehand (docs/sealing.md); the
  # blob travels base64-encoded, as JSON carries bytes.
  sealed=$(base64 <"$3" | tr -d '\n')
  body=$(printf '{"requestId":"%s","referral":' "$4"; sed '$ s/}[[:space:]]*$//' "$2"; printf ',"sealedDetails":"%s"}}' "$sealed")
  call POST /v1/referrals "$body" ;;
list)
  case "${2:-}" in
  inbox) call GET '/v1/referrals?direction=REFERRAL_DIRECTION_INBOX' ;;
  outbox) call GET '/v1/referrals?direction=REFERRAL_DIRECTION_OUTBOX' ;;
  *) call GET /v1/referrals ;;
  esac ;;
get) call GET "/v1/$2" ;;
act) call POST "/v1/$2:$3" '{}' ;;
*) echo "usage: referral.sh send|list|get|act ..." >&2; exit 2 ;;
esac
