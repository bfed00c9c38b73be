"""dataset.py: pull a dataset's rows from the exchange with requests.

    python3 dataset.py pull agencies/{agency}/datasets/{id} [SINCE_REVISION]

Prints one JSON row a line (deletions included, with "deleted": true), then
the revision reached, to pull only what changed next time. PullDatasetRows
streams, so it is called with the Connect protocol's JSON encoding, which
the exchange serves on the same port: POST to the method's path, the
request and each answer framed as a flag byte and a 4-byte big-endian
length; a frame with flag 2 ends the stream and carries the error, if any.
Environment as referral.py: EXCHANGE_URL, EXCHANGE_CERT, EXCHANGE_KEY,
EXCHANGE_CA.
"""

import json
import os
import struct
import sys

import requests

PULL = "/alltogether.exchange.v1.DatasetService/PullDatasetRows"


def frames(raw):
    """Yields (flags, JSON) of each frame of a Connect stream."""
    while True:
        head = raw.read(5)
        if len(head) < 5:
            raise IOError("the stream ended without its end frame")
        flags, length = struct.unpack(">BI", head)
        body = raw.read(length)
        yield flags, json.loads(body)
        if flags & 2:
            return


def pull(dataset, since_revision=0):
    """Yields the rows changed after since_revision; returns the revision."""
    request = json.dumps({"dataset": dataset, "sinceRevision": str(since_revision)}).encode()
    resp = requests.post(os.environ["EXCHANGE_URL"] + PULL,
                         data=struct.pack(">BI", 0, len(request)) + request,
                         headers={"Content-Type": "application/connect+json"},
                         cert=(os.environ["EXCHANGE_CERT"], os.environ["EXCHANGE_KEY"]),
                         verify=os.environ["EXCHANGE_CA"], stream=True, timeout=60)
    if not resp.ok:
        raise RuntimeError(resp.text)
    revision = since_revision
    for flags, message in frames(resp.raw):
        if flags & 2:
            if "error" in message:
                raise RuntimeError(json.dumps(message["error"]))
            return revision
        yield from message.get("rows", [])
        revision = int(message.get("revision", revision))


def main(args):
    if len(args) < 2 or args[0] != "pull":
        print(__doc__, file=sys.stderr)
        return 2
    rows = pull(args[1], int(args[2]) if len(args) > 2 else 0)
    try:
        while True:
            print(json.dumps(next(rows)))
    except StopIteration as end:
        print(json.dumps({"revision": str(end.value)}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except RuntimeError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
