package store

import (
	"context"
	"strings"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// AgencyPrefix starts every agency resource name.
const AgencyPrefix = "agencies/"

var agencies = table[*exchangev1.Agency]{
	bucket:  bucketAgencies,
	newT:    func() *exchangev1.Agency { return new(exchangev1.Agency) },
	indexes: agencyIndexes,
}

func agencyIndexes(a *exchangev1.Agency) []indexEntry {
	id := strings.TrimPrefix(a.GetName(), AgencyPrefix)
	var out []indexEntry
	for _, c := range a.GetCountries() {
		out = append(out, indexEntry{bucketAgencyByCountry, joinKey(c, id)})
	}
	for _, n := range a.GetNiches() {
		out = append(out, indexEntry{bucketAgencyByNiche, append(u32(uint32(n)), id...)})
	}
	seen := map[string]bool{}
	for _, l := range a.GetCoverage() {
		if l.GetSubdivision() != "" && !seen[l.GetSubdivision()] {
			seen[l.GetSubdivision()] = true
			out = append(out, indexEntry{bucketAgencyBySubdivision, joinKey(l.GetSubdivision(), id)})
		}
	}
	return out
}

// agencyKey is the primary key of "agencies/{id}".
func agencyKey(name string) []byte { return []byte(strings.TrimPrefix(name, AgencyPrefix)) }

// CreateAgency stores a new agency with the given id, active. A retry with
// the same Op.RequestID returns the agency the first call created.
func (s *Store) CreateAgency(ctx context.Context, op Op, id string, a *exchangev1.Agency) (*exchangev1.Agency, error) {
	var out *exchangev1.Agency
	err := s.update(ctx, op, func(w *writeTx) error {
		if name, ok := w.replayed(); ok {
			got, found, err := agencies.get(w.tx, agencyKey(name))
			if err != nil || !found {
				return internal("request id refers to a missing agency", err)
			}
			out = got
			return nil
		}
		a = proto.Clone(a).(*exchangev1.Agency)
		a.State = exchangev1.AgencyState_AGENCY_STATE_ACTIVE
		a.SuspendReason = ""
		a.EncryptionKey, a.PreviousEncryptionKeys = nil, nil // only the agency sets its key
		created, err := agencies.create(w, []byte(id), AgencyPrefix+id, a)
		out = created
		return err
	})
	return out, err
}

// GetAgency returns the agency named "agencies/{id}".
func (s *Store) GetAgency(ctx context.Context, name string) (*exchangev1.Agency, error) {
	var out *exchangev1.Agency
	err := s.view(ctx, func(tx kv.Tx) error {
		a, ok, err := agencies.get(tx, agencyKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(name)
		}
		out = a
		return nil
	})
	return out, err
}

// UpdateAgency applies mutate to the stored agency and stores the result.
// A non-empty etag must match the stored one (else KindEtagMismatch).
// mutate runs inside the write transaction and must only change the value
// it is given; an error from it aborts the update unchanged.
func (s *Store) UpdateAgency(ctx context.Context, op Op, name, etag string, mutate func(*exchangev1.Agency) error) (*exchangev1.Agency, error) {
	var out *exchangev1.Agency
	err := s.update(ctx, op, func(w *writeTx) error {
		a, err := agencies.modify(w, agencyKey(name), name, etag, mutate)
		out = a
		return err
	})
	return out, err
}

// AgencyFilter selects agencies in ListAgencies; zero fields match all.
type AgencyFilter struct {
	// Country is an ISO 3166-1 alpha-2 code the agency works in.
	Country string
	// Niche is a niche the agency has.
	Niche exchangev1.Niche
	// Subdivision is an ISO 3166-2 code the agency covers.
	Subdivision string
	// State is the agency's state.
	State exchangev1.AgencyState
}

func (f AgencyFilter) matches(a *exchangev1.Agency) bool {
	if f.State != 0 && a.GetState() != f.State {
		return false
	}
	if f.Country != "" && !contains(a.GetCountries(), f.Country) {
		return false
	}
	if f.Niche != 0 && !contains(a.GetNiches(), f.Niche) {
		return false
	}
	if f.Subdivision != "" {
		found := false
		for _, l := range a.GetCoverage() {
			found = found || l.GetSubdivision() == f.Subdivision
		}
		if !found {
			return false
		}
	}
	return true
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// ListAgencies returns one page of agencies matching f, in name order. It
// walks the most selective index the filter allows.
func (s *Store) ListAgencies(ctx context.Context, f AgencyFilter, p Page) ([]*exchangev1.Agency, string, error) {
	fp := query("agencies", f.Country, f.Niche.String(), f.Subdivision, f.State.String())
	var (
		bucket = bucketAgencies
		prefix []byte
		idOf   = func(k []byte) []byte { return k }
	)
	switch {
	case f.Subdivision != "":
		bucket, prefix = bucketAgencyBySubdivision, joinKey(f.Subdivision, "")
	case f.Country != "":
		bucket, prefix = bucketAgencyByCountry, joinKey(f.Country, "")
	case f.Niche != 0:
		bucket, prefix = bucketAgencyByNiche, u32(uint32(f.Niche))
	}
	if prefix != nil {
		n := len(prefix)
		idOf = func(k []byte) []byte { return k[n:] }
	}
	var items []*exchangev1.Agency
	var token string
	err := s.view(ctx, func(tx kv.Tx) error {
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucket, prefix, p, fp, func(k, _ []byte) (*exchangev1.Agency, bool, error) {
			a, ok, err := agencies.get(tx, idOf(k))
			if err != nil || !ok {
				return nil, false, err
			}
			return a, f.matches(a), nil
		})
		return err
	})
	return items, token, err
}
