package store

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"time"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/auditchain"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// writeTx is one logical change inside a (possibly shared) bbolt write
// transaction. The first recorded change takes the next global revision;
// every recorded change appends a change-log entry and an audit entry in
// the same transaction as the data it describes.
type writeTx struct {
	tx       kv.Tx
	op       Op
	now      time.Time
	clock    *revisionClock // allocates the revisions
	revision int64          // the revision of the change being made; 0 between changes
	last     int64          // the highest revision recorded in this transaction
	// directory is set when the change is to an agency or a certificate,
	// what LookupCaller reads.
	directory bool
	// head is the global revision and the audit head as this write
	// function has moved them. They are read from the meta bucket at first
	// use and written back once, by flush, when the function has succeeded,
	// not at every change: a batch of 100 referrals writes them once, not
	// 100 times each. Within the function they are read only from here.
	head writeHead
	// logTime is now as a protobuf timestamp for the change-log and audit
	// entries, which are encoded at once and dropped: one for the whole
	// transaction rather than two for every change (logTimestamp).
	logTime *timestamppb.Timestamp
}

// writeHead is the revision and audit head a write function works on.
type writeHead struct {
	revision              int64
	auditSeq              uint64
	auditHash             []byte // sha256 of the entry auditSeq; the genesis hash before any
	revisionRead, seqRead bool   // loaded from the meta bucket
	revisionSet, seqSet   bool   // changed, to be written by flush
}

var deterministic = proto.MarshalOptions{Deterministic: true}

func marshal(m proto.Message) ([]byte, error) {
	b, err := deterministic.Marshal(m)
	if err != nil {
		return nil, internal("cannot encode record", err)
	}
	return b, nil
}

func unmarshal(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return internal("cannot decode record", err)
	}
	return nil
}

// timestamp returns the transaction's time as a protobuf timestamp.
func (w *writeTx) timestamp() *timestamppb.Timestamp { return timestamppb.New(w.now) }

// logTimestamp is timestamp for the messages the transaction encodes at
// once and never hands out (change-log and audit entries), made once and
// shared by all of them. A record stored or returned takes timestamp, its
// own.
func (w *writeTx) logTimestamp() *timestamppb.Timestamp {
	if w.logTime == nil {
		w.logTime = timestamppb.New(w.now)
	}
	return w.logTime
}

// nextRevision returns the revision of the change being made, allocating
// the next global revision (a commit time, revision.go) on first use. Every recorded change ends its
// revision, so each change in the log has a revision of its own even when
// several are committed in one transaction: a watcher that resumes from the
// revision of the last event it received can never skip a sibling.
func (w *writeTx) nextRevision() (int64, error) {
	if w.revision != 0 {
		return w.revision, nil
	}
	rev := w.clock.allocate(w.currentRevision())
	w.head.revision, w.head.revisionSet = rev, true
	w.revision = rev
	w.last = rev
	return rev, nil
}

// currentRevision returns the last revision allocated, by this write
// function or before it.
func (w *writeTx) currentRevision() int64 {
	if !w.head.revisionRead {
		w.head.revision, w.head.revisionRead = max(readRevision(w.tx), readFloor(w.tx)), true
	}
	return w.head.revision
}

// auditHead returns the sequence number and hash of the last audit entry,
// appended by this write function or before it.
func (w *writeTx) auditHead() (uint64, []byte) {
	if !w.head.seqRead {
		w.head.auditSeq, w.head.auditHash = 0, make([]byte, sha256.Size)
		if head := w.tx.Bucket(bucketMeta).Get(metaAuditHead); head != nil {
			w.head.auditSeq = binary.BigEndian.Uint64(head[:8])
			copy(w.head.auditHash, head[8:])
		}
		w.head.seqRead = true
	}
	return w.head.auditSeq, w.head.auditHash
}

// flush writes the revision and the audit head this write function moved
// to the meta bucket, in its transaction. It runs once, after the
// function has succeeded and before the transaction commits.
func (w *writeTx) flush() error {
	meta := w.tx.Bucket(bucketMeta)
	if w.head.revisionSet {
		if err := meta.Put(metaRevision, u64(uint64(w.head.revision))); err != nil {
			return internal("cannot write revision", err)
		}
	}
	if w.head.seqSet {
		if err := meta.Put(metaAuditHead, append(u64(w.head.auditSeq), w.head.auditHash...)); err != nil {
			return internal("cannot write the audit head", err)
		}
	}
	w.head = writeHead{}
	return nil
}

// record appends the change-log entry and the audit entry for one change to
// the named resource, at the change's revision, and ends that revision.
func (w *writeTx) record(kind exchangev1.ChangeKind, name string, resource proto.Message) error {
	res, err := anypb.New(resource)
	if err != nil {
		return internal("cannot wrap resource for the change log", err)
	}
	return w.recordAny(kind, name, res)
}

// recordAny is record for a resource already wrapped (and so encoded).
func (w *writeTx) recordAny(kind exchangev1.ChangeKind, name string, res *anypb.Any) error {
	rev, err := w.nextRevision()
	if err != nil {
		return err
	}
	change, err := encodeChange(rev, w.logTimestamp(), kind, name, res)
	if err != nil {
		return err
	}
	if err := w.tx.Bucket(bucketChanges).Put(changeKey(rev), change); err != nil {
		return internal("cannot append to the change log", err)
	}
	if isDirectoryName(name) {
		w.directory = true
	}
	w.revision = 0
	return w.appendAudit(rev, name)
}

// isDirectoryName tells whether name is an agency ("agencies/{id}", not a
// resource under it) or a certificate, the records LookupCaller reads.
func isDirectoryName(name string) bool {
	if id, ok := strings.CutPrefix(name, AgencyPrefix); ok {
		return !strings.Contains(id, "/")
	}
	return strings.HasPrefix(name, CertificatePrefix)
}

// appendAudit adds an entry to the hash chain.
func (w *writeTx) appendAudit(rev int64, name string) error {
	seq, prev := w.auditHead()
	seq++
	entry := &exchangev1.AuditEntry{
		Sequence: seq, Revision: rev, Time: w.logTimestamp(),
		Actor: w.op.Actor, Method: w.op.Method, ResourceName: name, PreviousHash: prev, Reason: w.op.Reason,
		ActorCertificate: w.op.ActorCertificate,
	}
	encoded, err := auditchain.Seal(entry)
	if err != nil {
		return internal("cannot hash the audit entry", err)
	}
	if err := w.tx.Bucket(bucketAudit).Put(u64(seq), encoded); err != nil {
		return internal("cannot append to the audit chain", err)
	}
	w.head.auditSeq, w.head.auditHash, w.head.seqSet = seq, entry.Hash, true
	return nil
}

// replayed returns the resource name a previous call with the same
// idempotency key created, if any.
func (w *writeTx) replayed() (string, bool) {
	if w.op.RequestID == "" {
		return "", false
	}
	v := w.tx.Bucket(bucketRequests).Get(requestKey(w.op.Actor, w.op.Method, w.op.RequestID))
	if v == nil {
		return "", false
	}
	return string(v), true
}

// remember records that this call's idempotency key created name.
func (w *writeTx) remember(name string) error {
	if w.op.RequestID == "" {
		return nil
	}
	if err := w.tx.Bucket(bucketRequests).Put(requestKey(w.op.Actor, w.op.Method, w.op.RequestID), []byte(name)); err != nil {
		return internal("cannot record the request id", err)
	}
	return nil
}
