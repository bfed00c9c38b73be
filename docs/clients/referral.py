"""referral.py: the exchange's JSON face from Python with requests.

    python3 referral.py send REFERRAL.json DETAILS.json [REQUEST_ID]
    python3 referral.py inbox
    python3 referral.py get NAME
    python3 referral.py act NAME acknowledge|accept|start
    python3 referral.py follow NAME STATE [SECONDS]
    python3 referral.py open NAME

Environment: EXCHANGE_URL (https://host:7443), EXCHANGE_CERT, EXCHANGE_KEY
and EXCHANGE_CA (the agency's certificate, its key, and the exchange's CA
certificate); EXCHANGE_AGENCY (the agency's id, to seal to its own key as
well); EXCHANGE_KEY_RING (the agency's key ring file, to open details).
The routes and bodies are those of openapi/exchange.swagger.json; the
details are sealed and opened by sealing.py (docs/sealing.md's format).
Answers are JSON on standard output; an error prints the google.rpc.Status
the exchange answered and exits with status 1.
"""

import base64
import json
import os
import sys
import time
import uuid

import requests

import sealing


class ExchangeError(Exception):
    """An error answer: its google.rpc.Status as a dict."""

    def __init__(self, status):
        super().__init__(json.dumps(status))
        self.status = status


class Exchange:
    """A session with the exchange as the agency of the certificate."""

    def __init__(self, url, cert, key, ca):
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.cert, self.ca = (cert, key), ca

    def call(self, method, path, body=None, params=None):
        # verify goes with each request: a Session's verify gives way to
        # REQUESTS_CA_BUNDLE when that is set, and the exchange's CA must
        # not.
        resp = self.http.request(method, self.url + path, json=body, params=params, timeout=30,
                                 cert=self.cert, verify=self.ca)
        if not resp.ok:
            raise ExchangeError(resp.json())
        return resp.json()

    def recipient(self, agency):
        """The agency's current public key, from the directory."""
        key = self.call("GET", "/v1/" + agency)["agency"].get("encryptionKey", {}).get("recipient")
        if not key:
            raise RuntimeError(f"{agency} has registered no key")
        return key

    def send(self, referral, details, sender, request_id):
        """Seals the details to the receiver's key and the sender's own,
        and creates the referral; retrying with the same request_id is
        safe (the exchange returns the first referral)."""
        binding = sealing.Binding(request_id, sender, referral["receiver"])
        sealed = sealing.seal(details, binding, [self.recipient(referral["receiver"]), self.recipient(sender)])
        referral = dict(referral, sealedDetails=base64.b64encode(sealed).decode())
        return self.call("POST", "/v1/referrals", {"referral": referral, "requestId": request_id})["referral"]

    def open_details(self, name, key_ring):
        """Reads a referral and opens its details with the key ring file."""
        r = self.get(name)
        with open(key_ring) as f:
            identities = f.read().splitlines()
        return sealing.open_sealed(base64.b64decode(r["sealedDetails"]), identities,
                                   sealing.Binding(r["requestId"], r["sender"], r["receiver"]))

    def referrals(self, direction=None):
        """Yields the caller's referrals, newest first, page by page."""
        params = {"direction": direction} if direction else {}
        while True:
            page = self.call("GET", "/v1/referrals", params=params)
            yield from page.get("referrals", [])
            if not page.get("nextPageToken"):
                return
            params["pageToken"] = page["nextPageToken"]

    def get(self, name):
        return self.call("GET", "/v1/" + name)["referral"]

    def act(self, name, verb):
        """acknowledge, accept or start, guarded by the referral's etag."""
        etag = self.get(name).get("etag", "")
        return self.call("POST", f"/v1/{name}:{verb}", {"etag": etag})["referral"]

    def follow(self, name, state, seconds):
        """Polls the referral until it reaches state; returns it."""
        deadline = time.monotonic() + seconds
        while True:
            referral = self.get(name)
            if referral["state"] == state or time.monotonic() > deadline:
                return referral
            time.sleep(0.5)


def main(args):
    ex = Exchange(os.environ["EXCHANGE_URL"], os.environ["EXCHANGE_CERT"],
                  os.environ["EXCHANGE_KEY"], os.environ["EXCHANGE_CA"])
    command = args[0]
    if command == "send":
        with open(args[1]) as f:
            referral = json.load(f)
        with open(args[2]) as f:
            details = json.load(f)
        request_id = args[3] if len(args) > 3 else str(uuid.uuid4())  # keep it to retry
        out = ex.send(referral, details, "agencies/" + os.environ["EXCHANGE_AGENCY"], request_id)
    elif command == "open":
        out = ex.open_details(args[1], os.environ["EXCHANGE_KEY_RING"])
    elif command == "inbox":
        out = list(ex.referrals("REFERRAL_DIRECTION_INBOX"))
    elif command == "get":
        out = ex.get(args[1])
    elif command == "act":
        out = ex.act(args[1], args[2])
    elif command == "follow":
        out = ex.follow(args[1], args[2], float(args[3]) if len(args) > 3 else 30)
        if out["state"] != args[2]:
            print(f"{args[1]} is still {out['state']}", file=sys.stderr)
            return 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ExchangeError as e:
        print(json.dumps(e.status), file=sys.stderr)
        sys.exit(1)
