package store

import (
	"context"
	"strings"

	"github.com/alltogether/exchange/store/kv"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// WorkingGroupPrefix starts every working group resource name.
const WorkingGroupPrefix = "workingGroups/"

var workingGroups = table[*exchangev1.WorkingGroup]{
	bucket:  bucketWorkingGroups,
	newT:    func() *exchangev1.WorkingGroup { return new(exchangev1.WorkingGroup) },
	indexes: workingGroupIndexes,
}

func workingGroupIndexes(g *exchangev1.WorkingGroup) []indexEntry {
	id := strings.TrimPrefix(g.GetName(), WorkingGroupPrefix)
	out := make([]indexEntry, 0, len(g.GetMembers()))
	for _, m := range g.GetMembers() {
		out = append(out, indexEntry{bucketWorkingGroupByMember, joinKey(strings.TrimPrefix(m.GetAgency(), AgencyPrefix), id)})
	}
	return out
}

func workingGroupKey(name string) []byte { return []byte(strings.TrimPrefix(name, WorkingGroupPrefix)) }

// checkMembersExist fails with NotFound naming the first member agency that
// is not in the directory.
func checkMembersExist(tx kv.Tx, g *exchangev1.WorkingGroup) error {
	for i, m := range g.GetMembers() {
		if _, ok, err := agencies.get(tx, agencyKey(m.GetAgency())); err != nil {
			return err
		} else if !ok {
			field := fieldIndex("working_group.members", i, "agency")
			return &Error{Kind: KindInvalidArgument, Resource: m.GetAgency(), Field: field,
				Message: field + ": " + m.GetAgency() + " is not in the directory"}
		}
	}
	return nil
}

// CreateWorkingGroup stores a new working group with the given id. Every
// member agency must exist.
func (s *Store) CreateWorkingGroup(ctx context.Context, op Op, id string, g *exchangev1.WorkingGroup) (*exchangev1.WorkingGroup, error) {
	var out *exchangev1.WorkingGroup
	err := s.update(ctx, op, func(w *writeTx) error {
		if name, ok := w.replayed(); ok {
			got, found, err := workingGroups.get(w.tx, workingGroupKey(name))
			if err != nil || !found {
				return internal("request id refers to a missing working group", err)
			}
			out = got
			return nil
		}
		if err := checkMembersExist(w.tx, g); err != nil {
			return err
		}
		created, err := workingGroups.create(w, []byte(id), WorkingGroupPrefix+id, g)
		out = created
		return err
	})
	return out, err
}

// GetWorkingGroup returns the working group with the given name.
func (s *Store) GetWorkingGroup(ctx context.Context, name string) (*exchangev1.WorkingGroup, error) {
	var out *exchangev1.WorkingGroup
	err := s.view(ctx, func(tx kv.Tx) error {
		g, ok, err := workingGroups.get(tx, workingGroupKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(name)
		}
		out = g
		return nil
	})
	return out, err
}

// UpdateWorkingGroup applies mutate to the stored group; every member
// agency of the result must exist. See UpdateAgency for etag and mutate.
func (s *Store) UpdateWorkingGroup(ctx context.Context, op Op, name, etag string, mutate func(*exchangev1.WorkingGroup) error) (*exchangev1.WorkingGroup, error) {
	var out *exchangev1.WorkingGroup
	err := s.update(ctx, op, func(w *writeTx) error {
		g, err := workingGroups.modify(w, workingGroupKey(name), name, etag, func(g *exchangev1.WorkingGroup) error {
			if err := mutate(g); err != nil {
				return err
			}
			return checkMembersExist(w.tx, g)
		})
		out = g
		return err
	})
	return out, err
}

// DeleteWorkingGroup removes a working group; a non-empty etag must match.
func (s *Store) DeleteWorkingGroup(ctx context.Context, op Op, name, etag string) error {
	return s.update(ctx, op, func(w *writeTx) error {
		_, err := workingGroups.delete(w, workingGroupKey(name), name, etag)
		return err
	})
}

// ListWorkingGroups returns one page of working groups in name order; a
// non-empty memberAgencyID keeps the groups that agency belongs to.
func (s *Store) ListWorkingGroups(ctx context.Context, memberAgencyID string, p Page) ([]*exchangev1.WorkingGroup, string, error) {
	fp := query("working_groups", memberAgencyID)
	bucket, prefix := bucketWorkingGroups, []byte(nil)
	if memberAgencyID != "" {
		bucket, prefix = bucketWorkingGroupByMember, joinKey(memberAgencyID, "")
	}
	var items []*exchangev1.WorkingGroup
	var token string
	err := s.view(ctx, func(tx kv.Tx) error {
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucket, prefix, p, fp, func(k, _ []byte) (*exchangev1.WorkingGroup, bool, error) {
			g, ok, err := workingGroups.get(tx, k[len(prefix):])
			return g, ok, err
		})
		return err
	})
	return items, token, err
}
