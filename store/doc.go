/*
Package store is the exchange's database. It is the only package that
imports bbolt: the rest of the exchange sees Store's methods, the record
types of exchangev1, and one error type, *Error, whose Kind says what went
wrong (KindOf reads it from any error). Nothing from bbolt leaves the
package: no transactions, no byte slices (records are decoded into fresh
messages) and no bbolt errors (they become KindInternal, or KindClosed).

# Basics

Open opens one bbolt file, creating it with mode 0600, and Close closes it.
A Store is safe for concurrent use. Each method runs in one bbolt
transaction: reads in a read transaction, which sees one consistent
snapshot; writes in a write transaction, which commits completely or not at
all. A method checks its context before it starts, not while it runs.

Every write takes an Op that names the caller (Actor), the method it called
(Method) and, on create-like calls, the caller's idempotency key
(RequestID). The Op goes into the audit chain; a Store never decides access,
the server does that before calling.

Records are the API's own messages. The store sets their output-only fields
(name, create_time, update_time, etag) and ignores what the caller put
there. Updates take a mutate function that changes a copy of the stored
record; it cannot change those fields. mutate can change anything else,
including state fields such as Agency.state, so only the server's state
verbs should pass a mutate that does.

# Data model

schema.go names every bucket and key encoding. Values are deterministic
protobuf encodings. Keys that must sort as numbers are fixed-width
big-endian; composite keys join text parts with a zero byte, which no
identifier contains, so that a prefix ending in the separator matches whole
parts only ("ilo" never matches "ilo-x").

Revision. One counter in the meta bucket counts committed changes. Every
change takes a revision of its own, even when one write makes several in
one transaction (naming a focal point also ends its predecessor's tenure:
two changes, two revisions), so that a watcher resuming from the revision
of the last event it saw can never skip a sibling. Revision returns the
last committed revision. A write function keeps the counter, and the
audit head below, in memory while it runs and writes both to the meta
bucket once when it succeeds (writeTx.flush), so a batch of 100
referrals writes them once rather than 100 times each.

Change log. Each change appends a Change (revision, time, kind, resource
name, and the resource after the change, or before it for a delete) under
its revision. Changes replays the log after a revision, for watch streams
and incremental sync. Changed returns a channel closed at the next commit that records a
change, so a watcher can wait instead of polling. Compact removes entries
up to a revision; Changes from before it then fails with KindOutOfRange,
and the caller lists again (etcd's model). It deletes 10,000 entries per
transaction, recording its progress in each, so that a long backlog does
not hold writes back until it is gone.

Audit chain. Each change also appends an AuditEntry: sequence, revision,
time, actor, method and resource name, never personal data. An entry's hash
is SHA-256 of its encoding without the hash, and each entry carries the hash
of the one before it; the meta bucket holds the head (last sequence and
hash). VerifyAudit walks the chain and checks sequence, hashes, links and
head; AuditHead and AuditEntries export it.

Idempotency. A create-like call with a RequestID records (actor, method,
request id) → resource name in the same transaction as the record. A repeat
of that Op writes nothing and returns the resource as it is now, even if the
repeat's body differs. Another actor or another method with the same
request id is a different request. A call that fails records nothing, so
the caller may retry it. Replayed lets the server skip expensive work on a
retry, such as signing a certificate.

Etags. An etag is a hash of the record's content (including its update
time), so it changes exactly when the record does. Update and Delete take
an etag: empty means "whatever is stored", anything else must match or the
call fails with KindEtagMismatch and changes nothing. An update whose mutate
changes nothing writes nothing: the record keeps its update time and etag,
and no revision, change or audit entry is spent.

Secondary indexes. Lists by country, niche, subdivision, working-group
member, certificate subject and focal-point topic walk index buckets whose
keys end with the record's key and whose values are empty. A record and its
index entries are written by the same call in the same transaction; an
update removes the old version's entries and writes the new one's. A list
walks the most selective index its filter allows, then checks the whole
filter against each record.

Pages. Lists take a Page and return one page and a token for the next; the
last page has no token and is never empty (unless nothing matches). A token
is the base64url encoding of a fingerprint of the query and the last key
returned. It is opaque to callers, stays valid while records change, and
fails with KindInvalidArgument (field page_token) if it is malformed or
comes from a different query.

# Durability and group commit

A write returns only after its transaction is committed and fsynced.
Writes go through the group committer of package groupcommit: a write
that finds no commit running starts one at once, and the writes that
arrive while a commit runs share the next transaction (up to
Options.MaxBatchSize of them) and its fsyncs. Nothing waits for a timer:
under light load a write commits alone and at once, under heavy load
batches grow to whatever arrives during one commit. This is where the
throughput comes from. Each write in a batch still gets its own revision, change and
audit entries, and its own result.

If one write in a batch fails, the committer rolls back the whole
transaction, runs the others again, and runs the failing one again on its
own, as bbolt's DB.Batch does. So a function
passed to the internal update method, and the mutate function a caller
passes to UpdateAgency and the other updates, may run more than once. It must
have no effect outside the transaction except variables it sets afresh on
every run, and it must not call the Store.

Close waits for calls in flight, including writes still waiting for their
batch, and later calls fail with KindClosed.

# Options

Open configures bbolt for a long-running server:

  - A lock timeout (Options.LockTimeout, default 1s). bbolt locks the file;
    a second exchanged on the same data directory fails with
    KindFailedPrecondition instead of hanging.
  - Mode 0600, set again on every Open: the file is the exchange's whole
    state.
  - The hash-map freelist, which keeps page allocation fast as the file
    grows.
  - The freelist written on every commit (NoFreelistSync false), so that
    Open does not scan the whole file to rebuild it: start-up time stays
    flat with millions of records.
  - A 1 GiB initial memory map (address space, not memory), so that the map
    is rarely grown: growing it waits for every open transaction.
  - Under a size limit (Options.MaxSize), bbolt's own MaxSize, set for each
    write transaction, and file growth in steps of a 64th of the limit
    instead of bbolt's 16 MiB, so that the file never passes the limit;
    ordinary writes stop a 16th short of it, the rest being kept for the
    audit entries of reads and for erasures (quota.go).
  - Group commit of at most MaxBatchSize 256 writes per transaction, with
    no waiting for company (MaxBatchDelay 0) beyond a few yields of the
    processor that let handlers already running queue their writes (the
    first commit after a quiet moment otherwise held one write while the
    rest waited for its fsyncs): bbolt's own DB.Batch makes
    every write wait for a 2ms timer even when the disk is idle, and on
    this project's benchmark its batches reach only about two thirds of
    the rate of commits that start as soon as the previous one ends.

Every write transaction also packs the pages of the buckets that only grow
at their end (change log, audit chain, request ids, referrals and their
sealed details, plan versions, dataset row changes; see appendBuckets):
bbolt's default splits pages in half whatever the key order, which left
these buckets half empty. Ids (newID) and the client's request ids start
with the time, so new keys land at the end.

Open also creates missing buckets, refuses with KindFailedPrecondition a
database whose schema version is newer than this code's, and brings one
whose version is older up to date in the transaction that opens it
(migrate.go; a read-only Open changes nothing).

# Caveats

  - One process. The file lock keeps out a second server, but also every
    offline tool while the server runs.
  - The audit chain detects edits made without recomputing it, such as a
    changed, removed or reordered entry. Anyone who can write the file can
    rewrite the whole chain and its head. Keeping AuditHead's output
    somewhere else (a log, a signed export) is what makes the chain
    evidence.
  - The change log holds whole resources, including focal points' contact
    details, and keeps a deleted record's last version until Compact
    removes it. The audit chain is never compacted.
  - The file never shrinks. While a long read transaction runs (a backup,
    say), pages that later writes free cannot be reused, so the file grows.
  - Revision is published just after the commit, so a reader can briefly
    see records newer than Revision.
  - A write that has joined a batch finishes even if its context is
    cancelled.
  - Changes may return more than limit entries, to finish a revision.
*/
package store
