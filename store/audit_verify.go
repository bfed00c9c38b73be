package store

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/auditchain"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// auditVerifyChunk is how many entries one read transaction of VerifyAudit
// checks (a variable so that tests can make it small).
var auditVerifyChunk = 10_000

// VerifyAudit walks the whole audit chain with auditchain.Verifier (sequence
// without gaps, each entry's hash, each link to the entry before) and
// checks that the stored head matches the last entry. It returns the
// number of entries checked.
//
// It reads auditVerifyChunk entries per read transaction rather than the
// whole chain in one: a long read transaction keeps the pages that writes
// free from being reused (the file grows) and makes a write that must grow
// the file wait for it to end. The chain is only ever appended to, so the
// entries a later transaction reads link to those an earlier one checked;
// the head is compared with the last entry in the transaction that reads
// it.
func (s *Store) VerifyAudit(ctx context.Context) (uint64, error) {
	v := auditchain.NewVerifier()
	var n uint64
	for done := false; !done; {
		err := s.view(ctx, func(tx kv.Tx) error {
			seq, _ := v.Head()
			c := tx.Bucket(bucketAudit).Cursor()
			read := 0
			for k, val := c.Seek(u64(seq + 1)); k != nil; k, val = c.Next() {
				if read == auditVerifyChunk {
					return nil // the next transaction goes on from here
				}
				if err := addAuditEntry(v, k, val); err != nil {
					return err
				}
				read++
				n++
			}
			done = true
			return checkAuditHead(tx, v)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// VerifyAuditRecent checks the stored audit head against the last entries
// of the chain: that the last of them is the head, and the last n entries'
// sequence, hashes and links to each other (the first one's link to the
// entry before it is taken on trust). It reads at most n+1 entries in one
// read transaction, so its time does not grow with the chain; a change to
// an older entry is found only by VerifyAudit. n must be at least 1. It
// returns the number of entries checked.
func (s *Store) VerifyAuditRecent(ctx context.Context, n uint64) (uint64, error) {
	if n == 0 {
		return 0, &Error{Kind: KindInvalidArgument, Message: "VerifyAuditRecent needs at least one entry to check"}
	}
	var checked uint64
	err := s.view(ctx, func(tx kv.Tx) error {
		headSeq, _ := readAuditHead(tx)
		from := uint64(1)
		if headSeq > n {
			from = headSeq - n + 1
		}
		c := tx.Bucket(bucketAudit).Cursor()
		k, val := c.Seek(u64(from))
		v := auditchain.NewVerifier()
		if from > 1 && k != nil {
			var first exchangev1.AuditEntry
			if err := proto.Unmarshal(val, &first); err != nil {
				return auditBroken(fmt.Errorf("%w at entry %d: cannot decode it", auditchain.ErrBroken, from))
			}
			v = auditchain.NewVerifierAfter(from-1, first.GetPreviousHash())
		}
		for ; k != nil; k, val = c.Next() {
			if err := addAuditEntry(v, k, val); err != nil {
				return err
			}
			checked++
		}
		return checkAuditHead(tx, v)
	})
	return checked, err
}

// addAuditEntry decodes one stored entry and adds it to the verifier.
func addAuditEntry(v *auditchain.Verifier, k, val []byte) error {
	seq, _ := v.Head()
	var e exchangev1.AuditEntry
	if err := proto.Unmarshal(val, &e); err != nil {
		return auditBroken(fmt.Errorf("%w at entry %d: cannot decode it", auditchain.ErrBroken, seq+1))
	}
	if binary.BigEndian.Uint64(k) != e.GetSequence() {
		return auditBroken(fmt.Errorf("%w at entry %d: stored under key %d", auditchain.ErrBroken, e.GetSequence(), binary.BigEndian.Uint64(k)))
	}
	if err := v.Add(&e); err != nil {
		return auditBroken(err)
	}
	return nil
}

// readAuditHead reads the stored head: the last entry's sequence and hash
// (0 and the genesis hash for an empty chain).
func readAuditHead(tx kv.Tx) (uint64, []byte) {
	if head := tx.Bucket(bucketMeta).Get(metaAuditHead); head != nil {
		return binary.BigEndian.Uint64(head[:8]), head[8:]
	}
	return 0, auditchain.Genesis
}

// checkAuditHead compares the verified chain with the stored head.
func checkAuditHead(tx kv.Tx, v *auditchain.Verifier) error {
	if err := v.CheckHead(readAuditHead(tx)); err != nil {
		return auditBroken(err)
	}
	return nil
}

func auditBroken(err error) error {
	return &Error{Kind: KindFailedPrecondition, Message: err.Error()}
}
