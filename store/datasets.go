package store

import (
	"bytes"
	"context"
	"sort"
	"strings"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// datasetCollection is the collection id in dataset names,
// "agencies/{agency}/datasets/{dataset}". Datasets are named under their
// owner so that one agency's dataset ids say nothing about another's.
const datasetCollection = "/datasets/"

var datasets = table[*exchangev1.Dataset]{
	bucket: bucketDatasets,
	newT:   func() *exchangev1.Dataset { return new(exchangev1.Dataset) },
}

// DatasetName returns "agencies/{agencyID}/datasets/{id}".
func DatasetName(agencyID, id string) string {
	return AgencyPrefix + agencyID + datasetCollection + id
}

// SplitDatasetName returns the owner's agency id and the dataset id of
// "agencies/{agency}/datasets/{dataset}"; ok is false for anything else.
func SplitDatasetName(name string) (agencyID, id string, ok bool) {
	rest, found := strings.CutPrefix(name, AgencyPrefix)
	if !found {
		return "", "", false
	}
	agencyID, id, ok = strings.Cut(rest, datasetCollection)
	return agencyID, id, ok && agencyID != "" && id != "" && !strings.Contains(id, "/")
}

// datasetKey is the dataset's key in bucketDatasets and the first part of
// its keys in bucketDatasetRows and bucketDatasetRowChanges: owner agency
// id ∅ dataset id.
func datasetKey(name string) []byte {
	agencyID, id, _ := SplitDatasetName(name)
	return joinKey(agencyID, id)
}

// CreateDataset stores a new dataset owned by op.Actor ("agencies/{id}"),
// named under it: an id needs to be unique only among the owner's
// datasets.
func (s *Store) CreateDataset(ctx context.Context, op Op, id string, d *exchangev1.Dataset) (*exchangev1.Dataset, error) {
	var out *exchangev1.Dataset
	err := s.update(ctx, op, func(w *writeTx) error {
		if name, ok := w.replayed(); ok {
			got, found, err := datasets.get(w.tx, datasetKey(name))
			if err != nil || !found {
				return internal("request id refers to a missing dataset", err)
			}
			out = got
			return nil
		}
		name := op.Actor + datasetCollection + id
		if _, _, ok := SplitDatasetName(name); !ok {
			return internal("only an agency can own a dataset, not "+op.Actor, nil)
		}
		d = proto.Clone(d).(*exchangev1.Dataset)
		d.Owner = op.Actor
		d.Locks, d.LockHistory = nil, nil
		created, err := datasets.create(w, datasetKey(name), name, d)
		out = created
		return err
	})
	return out, err
}

// GetDataset returns the dataset with the given name.
func (s *Store) GetDataset(ctx context.Context, name string) (*exchangev1.Dataset, error) {
	var out *exchangev1.Dataset
	err := s.view(ctx, func(tx kv.Tx) error {
		d, ok, err := datasets.get(tx, datasetKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(name)
		}
		out = d
		return nil
	})
	return out, err
}

// UpdateDataset applies mutate to the stored dataset; see UpdateAgency.
func (s *Store) UpdateDataset(ctx context.Context, op Op, name, etag string, mutate func(*exchangev1.Dataset) error) (*exchangev1.Dataset, error) {
	var out *exchangev1.Dataset
	err := s.update(ctx, op, func(w *writeTx) error {
		d, err := datasets.modify(w, datasetKey(name), name, etag, mutate)
		out = d
		return err
	})
	return out, err
}

// ListDatasets returns one page of datasets that keep accepts, in name
// order.
func (s *Store) ListDatasets(ctx context.Context, keep func(*exchangev1.Dataset) bool, fingerprint string, p Page) ([]*exchangev1.Dataset, string, error) {
	var items []*exchangev1.Dataset
	var token string
	err := s.view(ctx, func(tx kv.Tx) error {
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucketDatasets, nil, p, query("datasets", fingerprint), func(_, v []byte) (*exchangev1.Dataset, bool, error) {
			d := new(exchangev1.Dataset)
			if err := unmarshal(v, d); err != nil {
				return nil, false, err
			}
			return d, keep(d), nil
		})
		return err
	})
	return items, token, err
}

// RowKey is the canonical key of a row within its dataset: period,
// location, contributor id, then the category values given, in key order.
// Adding an optional category to a schema leaves existing keys unchanged.
func RowKey(r *exchangev1.Row) []byte {
	parts := []string{r.GetPeriod(), r.GetLocation(), strings.TrimPrefix(r.GetContributor(), AgencyPrefix)}
	keys := make([]string, 0, len(r.GetCategories()))
	for k, v := range r.GetCategories() {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+r.GetCategories()[k])
	}
	return joinKey(parts...)
}

// RowWrite is one row to write or delete. The row's contributor is the
// Op's actor.
type RowWrite struct {
	// Row is the row; for a deletion only its key fields count.
	Row *exchangev1.Row
	// Delete removes the row (leaving a tombstone) instead of writing it.
	Delete bool
}

// WriteDatasetRows writes rows into the dataset in one transaction at one
// revision. admit runs first, on the dataset as stored, and refuses the
// whole call (for example, a caller who is not a contributor). Then each
// write is judged alone: a row in a locked period or the deletion of a
// missing row is refused in its result, the others are stored; a row
// written exactly as it is stored is accepted and changes nothing. It
// returns the per-write errors, and the revision the accepted rows are at:
// the one written at, or, when every accepted row was unchanged, the
// latest they were written at before (0 when nothing was accepted).
func (s *Store) WriteDatasetRows(ctx context.Context, op Op, name string, admit func(*exchangev1.Dataset) error, writes []RowWrite) ([]error, int64, error) {
	var results []error
	var revision int64
	err := s.update(ctx, op, func(w *writeTx) error {
		results, revision = make([]error, len(writes)), 0
		d, ok, err := datasets.get(w.tx, datasetKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(name)
		}
		if err := admit(d); err != nil {
			return err
		}
		locked := map[string]bool{}
		for _, l := range d.GetLocks() {
			locked[l.GetPeriod()] = true
		}
		dk := string(datasetKey(name))
		rows, changes := w.tx.Bucket(bucketDatasetRows), w.tx.Bucket(bucketDatasetRowChanges)
		var written, deleted int32
		var unchangedAt int64 // the latest revision of the rows rewritten unchanged
		for i, rw := range writes {
			row := proto.Clone(rw.Row).(*exchangev1.Row)
			row.Contributor, row.Deleted = op.Actor, false // output only: deleting is RowWrite.Delete
			if locked[row.GetPeriod()] {
				results[i] = &Error{Kind: KindFailedPrecondition, Field: "row.period", Message: "row.period: period " + row.GetPeriod() + " is locked"}
				continue
			}
			key := append(joinKey(dk, ""), RowKey(row)...)
			var old exchangev1.Row
			v := rows.Get(key)
			if v != nil {
				if err := unmarshal(v, &old); err != nil {
					return err
				}
			}
			if rw.Delete && (v == nil || old.GetDeleted()) {
				results[i] = &Error{Kind: KindNotFound, Field: "row", Message: "row: no such row to delete"}
				continue
			}
			if !rw.Delete && v != nil && sameRow(&old, row) {
				// A rewrite of the row as stored changes nothing, so it
				// spends no revision and no change: a write resent after
				// its answer was lost (a field office's outbox) is stored
				// once. The row stays at the revision it was written at.
				unchangedAt = max(unchangedAt, old.GetRevision())
				continue
			}
			rev, err := w.nextRevision()
			if err != nil {
				return err
			}
			if v != nil {
				if err := changes.Delete(rowChangeKey(dk, old.GetRevision(), key[len(dk)+1:])); err != nil {
					return internal("cannot update the row change index", err)
				}
			}
			if rw.Delete {
				row = &exchangev1.Row{Contributor: op.Actor, Period: old.GetPeriod(), Location: old.GetLocation(), Categories: old.GetCategories(), Deleted: true}
				deleted++
			} else {
				written++
			}
			row.Revision, row.UpdateTime = rev, w.timestamp()
			b, err := marshal(row)
			if err != nil {
				return err
			}
			if err := rows.Put(key, b); err != nil {
				return internal("cannot write a row", err)
			}
			if err := changes.Put(rowChangeKey(dk, rev, key[len(dk)+1:]), nil); err != nil {
				return internal("cannot write the row change index", err)
			}
		}
		if written+deleted > 0 {
			revision = w.last
			return w.record(exchangev1.ChangeKind_CHANGE_KIND_UPDATED, name, &exchangev1.RowBatch{Dataset: name, Written: written, Deleted: deleted})
		}
		revision = unchangedAt
		return nil
	})
	return results, revision, err
}

// sameRow reports whether the stored row old holds what row (as about to
// be written) would: the same key, values and state, whatever its
// revision and update time.
func sameRow(old, row *exchangev1.Row) bool {
	if old.GetDeleted() {
		return false
	}
	a := proto.CloneOf(old)
	a.Revision, a.UpdateTime = 0, nil
	b := proto.CloneOf(row)
	b.Revision, b.UpdateTime = 0, nil
	return proto.Equal(a, b)
}

// rowChangeKey is the key in bucketDatasetRowChanges of the row with
// rowKey, in the dataset with key dk, written at revision.
func rowChangeKey(dk string, revision int64, rowKey []byte) []byte {
	k := joinKey(dk, "")
	k = append(k, u64(uint64(revision))...)
	return append(k, rowKey...)
}

// RowQuery selects rows for PullDatasetRows.
type RowQuery struct {
	// Dataset is the dataset's name.
	Dataset string
	// Since > 0 returns rows changed after that revision, tombstones
	// included, in revision order; 0 returns current rows in key order.
	Since int64
	// After is the position to continue from, as returned in a RowPage.
	After []byte
	// PeriodFrom and PeriodTo bound the period labels, inclusive; empty
	// for no bound.
	PeriodFrom, PeriodTo string
	// Keep, when set, decides on each row after the period bounds.
	Keep func(*exchangev1.Row) bool
	// Limit is the most rows to return.
	Limit int
	// MaxScan bounds the keys examined in one call, so that a selective
	// filter does not hold a read transaction for long; 0 means 50×Limit.
	MaxScan int
	// Encoded asks for the matching rows as stored, each the protobuf
	// encoding of a Row, in RowPage.Encoded rather than decoded in Rows:
	// a bulk pull sends them on as they are. A row is then decoded only
	// when Keep must judge it; the period bounds and the deleted flag are
	// read from its bytes.
	Encoded bool
}

// RowPage is one page of a row query.
type RowPage struct {
	// Rows are the matching rows, unless the query asked for Encoded.
	Rows []*exchangev1.Row
	// Encoded holds the matching rows as stored when the query asked for
	// them so, in order. They share one buffer, the caller's to keep.
	Encoded [][]byte
	// Next is the position to pass as After to continue; nil when done.
	Next []byte
}

// PullDatasetRows reads one page of rows in its own short read
// transaction; callers send the page and ask for the next one, so no
// transaction is held across network sends and memory stays bounded by
// the page.
func (s *Store) PullDatasetRows(ctx context.Context, q RowQuery) (RowPage, error) {
	var page RowPage
	dk := datasetKey(q.Dataset)
	maxScan := q.MaxScan
	if maxScan == 0 {
		maxScan = 50 * q.Limit
	}
	err := s.view(ctx, func(tx kv.Tx) error {
		if tx.Bucket(bucketDatasets).Get(dk) == nil {
			return notFound(q.Dataset)
		}
		page = RowPage{}
		rows := tx.Bucket(bucketDatasetRows)
		prefix := append(bytes.Clone(dk), sep)
		var c kv.Cursor
		var start []byte
		if q.Since > 0 {
			c = tx.Bucket(bucketDatasetRowChanges).Cursor()
			start = append(bytes.Clone(prefix), u64(uint64(q.Since+1))...)
		} else {
			c = rows.Cursor()
			start = append(bytes.Clone(prefix), q.PeriodFrom...)
		}
		k, v := c.Seek(start)
		if q.After != nil {
			k, v = c.Seek(q.After)
			if bytes.Equal(k, q.After) {
				k, v = c.Next()
			}
		}
		var last []byte
		var encoded []byte // the kept rows' bytes, copied out of the transaction
		var ends []int     // where each kept row's bytes end in encoded
		defer func() { page.Encoded = splitAt(encoded, ends) }()
		for examined := 0; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(page.Rows)+len(ends) == q.Limit || examined == maxScan {
				page.Next = last
				return nil
			}
			examined++
			row, value, verdict, err := q.examine(rows, prefix, k, v)
			if err != nil {
				return err
			}
			last = append(last[:0], k...)
			switch {
			case verdict == stopRows:
				return nil
			case verdict == skipRow:
			case q.Encoded:
				encoded = append(encoded, value...)
				ends = append(ends, len(encoded))
			default:
				page.Rows = append(page.Rows, row)
			}
		}
		return nil
	})
	return page, err
}

// splitAt cuts b at ends into the rows it holds.
func splitAt(b []byte, ends []int) [][]byte {
	if len(ends) == 0 {
		return nil
	}
	out := make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		out[i] = b[start:end:end]
		start = end
	}
	return out
}

// rowVerdict is what examine decides about a row.
type rowVerdict int

const (
	skipRow  rowVerdict = iota // the row does not match
	keepRow                    // the row matches
	stopRows                   // neither it nor any later key can match
)

// examine applies the query's filters to the row at one cursor position:
// its verdict, with the row's stored bytes (valid in the transaction) and,
// unless the query asked for Encoded and has no Keep, the row decoded.
func (q RowQuery) examine(rows kv.Bucket, prefix, k, v []byte) (*exchangev1.Row, []byte, rowVerdict, error) {
	if q.Since > 0 {
		v = rows.Get(append(bytes.Clone(prefix), k[len(prefix)+8:]...))
		if v == nil {
			return nil, nil, skipRow, nil
		}
	}
	var row *exchangev1.Row
	var period string
	var deleted bool
	if q.Encoded && q.Keep == nil {
		p, d, err := rowPeriodAndDeleted(v)
		if err != nil {
			return nil, nil, skipRow, err
		}
		if q.PeriodFrom != "" || q.PeriodTo != "" {
			period = string(p) // a copy only when a bound needs it
		}
		deleted = d
	} else {
		row = new(exchangev1.Row)
		if err := unmarshal(v, row); err != nil {
			return nil, nil, skipRow, err
		}
		period, deleted = row.GetPeriod(), row.GetDeleted()
	}
	switch {
	case q.Since == 0 && deleted:
		return nil, nil, skipRow, nil
	case q.PeriodTo != "" && period > q.PeriodTo:
		if q.Since == 0 {
			return nil, nil, stopRows, nil // rows are in period order
		}
		return nil, nil, skipRow, nil
	case q.PeriodFrom != "" && period < q.PeriodFrom:
		return nil, nil, skipRow, nil
	case q.Keep != nil && !q.Keep(row):
		return nil, nil, skipRow, nil
	}
	return row, v, keepRow, nil
}

// Field numbers of Row that rowPeriodAndDeleted reads.
var (
	rowPeriodField  = (&exchangev1.Row{}).ProtoReflect().Descriptor().Fields().ByName("period").Number()
	rowDeletedField = (&exchangev1.Row{}).ProtoReflect().Descriptor().Fields().ByName("deleted").Number()
)

// rowPeriodAndDeleted reads a stored row's period and deleted flag from
// its encoding, without decoding the rest. Every field is stepped over
// as protobuf's wire format lays it out, so that bytes that are not a
// Row's encoding are refused as unmarshal refuses them; the last
// occurrence of a field wins, as in decoding.
func rowPeriodAndDeleted(b []byte) (period []byte, deleted bool, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false, internal("cannot decode record", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == rowPeriodField && typ == protowire.BytesType:
			period, n = protowire.ConsumeBytes(b)
		case num == rowDeletedField && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			deleted = v != 0
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, false, internal("cannot decode record", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return period, deleted, nil
}
