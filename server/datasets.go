package server

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// datasetMutable are the fields UpdateDataset may change.
var datasetMutable = []string{"title", "description", "contributors", "contributor_groups", "audience",
	"public_aggregates", "suppression_threshold", "schema", "expected_locations"}

// defaultSuppression is the public aggregate threshold when a dataset sets
// none.
const defaultSuppression = 5

// datasetService implements DatasetService.
type datasetService struct {
	exchangev1.UnimplementedDatasetServiceServer
	server *Server
	store  *store.Store
}

// contributes reports whether the reader may write rows: the owner, a
// named contributor, or a member (not an observer) of a contributor group.
func contributes(r Reader, d *exchangev1.Dataset) bool {
	me := r.Caller.AgencyName()
	if me == "" {
		return false
	}
	if me == d.GetOwner() || slices.Contains(d.GetContributors(), me) {
		return true
	}
	return slices.ContainsFunc(d.GetContributorGroups(), func(g string) bool { return r.Members[g] })
}

// readsRows reports whether the reader may read rows: contributors, the
// observers of contributor groups, and the audience.
func readsRows(r Reader, d *exchangev1.Dataset) bool {
	return contributes(r, d) || r.Sees(d.GetOwner(), d.GetAudience()) ||
		slices.ContainsFunc(d.GetContributorGroups(), func(g string) bool { return r.Groups[g] })
}

// visibleDataset loads a dataset the caller may read; any other answers
// NOT_FOUND exactly like a missing one.
func (s *datasetService) visibleDataset(ctx context.Context, name string) (*exchangev1.Dataset, Reader, error) {
	reader, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, Reader{}, err
	}
	d, err := s.store.GetDataset(ctx, name)
	if err != nil {
		return nil, Reader{}, err
	}
	if !readsRows(reader, d) {
		return nil, Reader{}, notFound(name)
	}
	return d, reader, nil
}

// CreateDataset defines a dataset owned by the caller.
func (s *datasetService) CreateDataset(ctx context.Context, req *exchangev1.CreateDatasetRequest) (*exchangev1.CreateDatasetResponse, error) {
	agencyID, err := ownParent(ctx, req.GetParent())
	if err != nil {
		return nil, err
	}
	if err := checkDatasetDefinition("dataset", req.GetDataset()); err != nil {
		return nil, err
	}
	if req.GetValidateOnly() {
		// Only the caller's own datasets can conflict (ids are per owner),
		// so answering ALREADY_EXISTS reveals nothing of anyone else's.
		name := store.DatasetName(agencyID, req.GetDatasetId())
		if _, err := s.store.GetDataset(ctx, name); err == nil {
			return nil, &store.Error{Kind: store.KindAlreadyExists, Resource: name, Message: name + " already exists"}
		} else if store.KindOf(err) != store.KindNotFound {
			return nil, err
		}
		preview := proto.Clone(req.GetDataset()).(*exchangev1.Dataset)
		preview.Name, preview.Owner = name, req.GetParent()
		return &exchangev1.CreateDatasetResponse{Dataset: preview}, nil
	}
	d, err := s.store.CreateDataset(ctx, opFor(ctx, req.GetRequestId()), req.GetDatasetId(), req.GetDataset())
	if err != nil {
		return nil, err
	}
	return &exchangev1.CreateDatasetResponse{Dataset: d}, nil
}

// GetDataset returns a dataset the caller may read.
func (s *datasetService) GetDataset(ctx context.Context, req *exchangev1.GetDatasetRequest) (*exchangev1.GetDatasetResponse, error) {
	d, _, err := s.visibleDataset(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetDatasetResponse{Dataset: d}, nil
}

// ListDatasets lists the datasets the caller may read.
func (s *datasetService) ListDatasets(ctx context.Context, req *exchangev1.ListDatasetsRequest) (*exchangev1.ListDatasetsResponse, error) {
	reader, err := readerFor(ctx, s.store)
	if err != nil {
		return nil, err
	}
	items, next, err := s.store.ListDatasets(ctx, func(d *exchangev1.Dataset) bool { return readsRows(reader, d) },
		reader.Caller.Actor(), store.Page{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &exchangev1.ListDatasetsResponse{Datasets: items, NextPageToken: next}, nil
}

// UpdateDataset changes a definition; owner only; the schema may only
// change in ways that keep stored rows valid.
func (s *datasetService) UpdateDataset(ctx context.Context, req *exchangev1.UpdateDatasetRequest) (*exchangev1.UpdateDatasetResponse, error) {
	in := req.GetDataset()
	if in.GetName() == "" {
		return nil, invalidField("dataset.name", "required: the name of the dataset to update")
	}
	if _, _, err := s.visibleDataset(ctx, in.GetName()); err != nil {
		return nil, err
	}
	if err := checkDatasetDefinition("dataset", in); err != nil {
		return nil, err
	}
	caller := CallerFrom(ctx)
	d, err := s.store.UpdateDataset(ctx, opFor(ctx, ""), in.GetName(), in.GetEtag(), func(d *exchangev1.Dataset) error {
		if d.GetOwner() != caller.AgencyName() {
			return permissionDenied("only the owner " + d.GetOwner() + " may change " + d.GetName())
		}
		if in.GetPeriodType() != d.GetPeriodType() || in.GetFiscalYearStartMonth() != d.GetFiscalYearStartMonth() {
			return invalidField("dataset.period_type", "the period type of a dataset cannot change")
		}
		old := proto.Clone(d).(*exchangev1.Dataset)
		if err := applyMask(d, in, req.GetUpdateMask(), datasetMutable, "dataset"); err != nil {
			return err
		}
		return checkSchemaChange("dataset", old, d)
	})
	if err != nil {
		return nil, err
	}
	return &exchangev1.UpdateDatasetResponse{Dataset: d}, nil
}

// WriteDatasetRows validates each row against the schema, then stores the
// valid ones in one transaction; each write is reported at its index, its
// violations listed within the request's budget (batch_violations.go). A
// valid write that repeats the key of an earlier valid write of the call
// is refused (dataset_row_keys.go).
func (s *datasetService) WriteDatasetRows(ctx context.Context, req *exchangev1.WriteDatasetRowsRequest) (*exchangev1.WriteDatasetRowsResponse, error) {
	d, reader, err := s.visibleDataset(ctx, req.GetDataset())
	if err != nil {
		return nil, err
	}
	if !contributes(reader, d) {
		return nil, permissionDenied(reader.Caller.Actor() + " is not a contributor to " + d.GetName())
	}
	resp := &exchangev1.WriteDatasetRowsResponse{Results: make([]*exchangev1.RowWriteResult, len(req.GetWrites()))}
	var writes []store.RowWrite
	var positions []int
	budget := newViolationBudget()
	keys := rowKeys{}
	for i, w := range req.GetWrites() {
		res := &exchangev1.RowWriteResult{Index: int32(i)}
		resp.Results[i] = res
		firstOnly := budget.firstOnly()
		report, err := s.server.violations(w, firstOnly)
		if err != nil {
			res.Code = codeName(status.Code(err))
			continue
		}
		if report.total > 0 {
			res.Code, res.CheckedToFirstViolation = "INVALID_ARGUMENT", firstOnly
			res.Violations, res.UnlistedViolations = budget.list(len(report.kept), report.total, func(j int) (string, string) {
				return fmt.Sprintf("writes[%d].%s", i, report.kept[j].GetField()), report.kept[j].GetDescription()
			})
			continue
		}
		limit := 0
		if firstOnly {
			limit = 1
		}
		if v := rowViolations(fmt.Sprintf("writes[%d].row", i), d, w.GetRow(), w.GetDelete(), limit); len(v) > 0 {
			res.Code, res.CheckedToFirstViolation = "INVALID_ARGUMENT", firstOnly
			res.Violations, res.UnlistedViolations = budget.list(len(v), len(v), func(j int) (string, string) {
				return v[j].GetField(), v[j].GetDescription()
			})
			continue
		}
		if first, ok := keys.repeats(i, w); ok {
			res.Code = "INVALID_ARGUMENT"
			res.Violations, res.UnlistedViolations = budget.list(1, 1, func(int) (string, string) { return repeatedKeyViolation(i, first) })
			continue
		}
		writes = append(writes, store.RowWrite{Row: w.GetRow(), Delete: w.GetDelete()})
		positions = append(positions, i)
	}
	if len(writes) > 0 {
		errs, rev, err := s.store.WriteDatasetRows(ctx, opFor(ctx, ""), d.GetName(), func(d *exchangev1.Dataset) error {
			if !contributes(reader, d) {
				return permissionDenied(reader.Caller.Actor() + " is not a contributor to " + d.GetName())
			}
			return nil
		}, writes)
		if err != nil {
			return nil, err
		}
		resp.Revision = rev
		for j, e := range errs {
			res := resp.Results[positions[j]]
			if e == nil {
				res.Accepted = true
				continue
			}
			st, _ := status.FromError(toStatus(ctx, s.server.log, "WriteDatasetRows", e))
			res.Code = codeName(st.Code())
			if found := fieldViolations(st); len(found) > 0 {
				res.Violations, res.UnlistedViolations = budget.list(len(found), len(found), func(k int) (string, string) {
					return fmt.Sprintf("writes[%d].%s", positions[j], found[k].GetField()), found[k].GetDescription()
				})
			}
		}
	}
	for _, r := range resp.Results {
		if r.GetAccepted() {
			resp.Accepted++
		} else {
			resp.Rejected++
		}
	}
	return resp, nil
}

// LockDatasetPeriod approves a period; owner only.
func (s *datasetService) LockDatasetPeriod(ctx context.Context, req *exchangev1.LockDatasetPeriodRequest) (*exchangev1.LockDatasetPeriodResponse, error) {
	d, err := s.changeLock(ctx, req.GetDataset(), req.GetPeriod(), true, "")
	if err != nil {
		return nil, err
	}
	return &exchangev1.LockDatasetPeriodResponse{Dataset: d}, nil
}

// UnlockDatasetPeriod reopens a locked period; owner only.
func (s *datasetService) UnlockDatasetPeriod(ctx context.Context, req *exchangev1.UnlockDatasetPeriodRequest) (*exchangev1.UnlockDatasetPeriodResponse, error) {
	d, err := s.changeLock(ctx, req.GetDataset(), req.GetPeriod(), false, req.GetReason())
	if err != nil {
		return nil, err
	}
	return &exchangev1.UnlockDatasetPeriodResponse{Dataset: d}, nil
}

func (s *datasetService) changeLock(ctx context.Context, name, period string, lock bool, reason string) (*exchangev1.Dataset, error) {
	d, _, err := s.visibleDataset(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := checkPeriodLabel("period", d, period); err != nil {
		return nil, err
	}
	caller := CallerFrom(ctx)
	return s.store.UpdateDataset(ctx, opFor(ctx, ""), name, "", func(d *exchangev1.Dataset) error {
		if d.GetOwner() != caller.AgencyName() {
			return permissionDenied("only the owner " + d.GetOwner() + " may lock or unlock periods of " + d.GetName())
		}
		i := slices.IndexFunc(d.GetLocks(), func(l *exchangev1.PeriodLock) bool { return l.GetPeriod() == period })
		switch {
		case lock && i >= 0:
			return &store.Error{Kind: store.KindFailedPrecondition, Field: "period", Message: "period " + period + " is already locked"}
		case !lock && i < 0:
			return &store.Error{Kind: store.KindFailedPrecondition, Field: "period", Message: "period " + period + " is not locked"}
		case lock:
			d.Locks = append(d.Locks, &exchangev1.PeriodLock{Period: period, LockedBy: caller.AgencyName(), LockTime: timestamp(s.server.now())})
			slices.SortFunc(d.Locks, func(a, b *exchangev1.PeriodLock) int { return strings.Compare(a.GetPeriod(), b.GetPeriod()) })
		default:
			d.Locks = slices.Delete(d.Locks, i, i+1)
		}
		d.LockHistory = append(d.LockHistory, &exchangev1.PeriodLockEvent{
			Period: period, Locked: lock, Actor: caller.AgencyName(), Time: timestamp(s.server.now()), Reason: reason,
		})
		return nil
	})
}
