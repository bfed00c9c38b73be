package store

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// focalPointCollection is the collection id in focal point names.
const focalPointCollection = "/focalPoints/"

var focalPoints = table[*exchangev1.FocalPoint]{
	bucket: bucketFocalPoints,
	newT:   func() *exchangev1.FocalPoint { return new(exchangev1.FocalPoint) },
	indexes: func(fp *exchangev1.FocalPoint) []indexEntry {
		return []indexEntry{{bucketFocalPointByTopic, focalPointTopicKey(fp)}}
	},
}

// splitFocalPointName returns the agency id and focal point id of
// "agencies/{agency}/focalPoints/{id}".
func splitFocalPointName(name string) (agencyID, id string) {
	rest := strings.TrimPrefix(name, AgencyPrefix)
	agencyID, id, _ = strings.Cut(rest, focalPointCollection)
	return agencyID, id
}

func focalPointKey(name string) []byte {
	agencyID, id := splitFocalPointName(name)
	return joinKey(agencyID, id)
}

// focalPointTopicKey orders focal points by agency, topic, tenure start.
func focalPointTopicKey(fp *exchangev1.FocalPoint) []byte {
	agencyID, id := splitFocalPointName(fp.GetName())
	k := joinKey(agencyID, fp.GetTopic(), "")
	k = append(k, u32(DateNumber(fp.GetTenure().GetStart()))...)
	return append(k, id...)
}

// DateNumber encodes a date as yyyymmdd, which orders like the date; 0 for
// an unset date.
func DateNumber(d *exchangev1.CalendarDate) uint32 {
	if d == nil {
		return 0
	}
	return uint32(d.GetYear())*10000 + uint32(d.GetMonth())*100 + uint32(d.GetDay())
}

// dayBefore returns the date one day before d.
func dayBefore(d *exchangev1.CalendarDate) *exchangev1.CalendarDate {
	t := time.Date(int(d.GetYear()), time.Month(d.GetMonth()), int(d.GetDay()), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	return &exchangev1.CalendarDate{Year: int32(t.Year()), Month: int32(t.Month()), Day: int32(t.Day())}
}

// tenureIncludes reports whether the tenure covers the day.
func tenureIncludes(p *exchangev1.DatePeriod, day uint32) bool {
	if DateNumber(p.GetStart()) > day {
		return false
	}
	return p.GetEnd() == nil || DateNumber(p.GetEnd()) >= day
}

// CreateFocalPoint names a focal point for a topic at the agency
// "agencies/{agencyID}", which must exist. Focal points of the same agency
// and topic whose tenure is open and began before the new one end the day
// before it starts, in the same transaction, so that history is kept and
// "who holds the topic today" has one answer.
func (s *Store) CreateFocalPoint(ctx context.Context, op Op, agencyID string, fp *exchangev1.FocalPoint) (*exchangev1.FocalPoint, error) {
	var out *exchangev1.FocalPoint
	err := s.update(ctx, op, func(w *writeTx) error {
		if name, ok := w.replayed(); ok {
			got, found, err := focalPoints.get(w.tx, focalPointKey(name))
			if err != nil || !found {
				return internal("request id refers to a missing focal point", err)
			}
			out = got
			return nil
		}
		if _, ok, err := agencies.get(w.tx, []byte(agencyID)); err != nil {
			return err
		} else if !ok {
			return notFound(AgencyPrefix + agencyID)
		}
		if fp.GetTenure().GetStart() == nil {
			return &Error{Kind: KindInvalidArgument, Field: "focal_point.tenure.start", Message: "focal_point.tenure.start is required"}
		}
		start := DateNumber(fp.GetTenure().GetStart())
		var predecessors []*exchangev1.FocalPoint
		prefix := joinKey(agencyID, fp.GetTopic(), "")
		c := w.tx.Bucket(bucketFocalPointByTopic).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			prev, ok, err := focalPoints.get(w.tx, joinKey(agencyID, string(k[len(prefix)+4:])))
			if err != nil {
				return err
			}
			if ok && prev.GetTenure().GetEnd() == nil && DateNumber(prev.GetTenure().GetStart()) < start {
				predecessors = append(predecessors, prev)
			}
		}
		end := dayBefore(fp.GetTenure().GetStart())
		for _, prev := range predecessors {
			if _, err := focalPoints.modify(w, focalPointKey(prev.GetName()), prev.GetName(), "", func(p *exchangev1.FocalPoint) error {
				if p.Tenure == nil {
					p.Tenure = new(exchangev1.DatePeriod)
				}
				p.Tenure.End = proto.Clone(end).(*exchangev1.CalendarDate)
				return nil
			}); err != nil {
				return err
			}
		}
		id := newID(w.now)
		name := AgencyPrefix + agencyID + focalPointCollection + id
		created, err := focalPoints.create(w, joinKey(agencyID, id), name, fp)
		out = created
		return err
	})
	return out, err
}

// GetFocalPoint returns the focal point with the given name.
func (s *Store) GetFocalPoint(ctx context.Context, name string) (*exchangev1.FocalPoint, error) {
	var out *exchangev1.FocalPoint
	err := s.view(ctx, func(tx kv.Tx) error {
		fp, ok, err := focalPoints.get(tx, focalPointKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(name)
		}
		out = fp
		return nil
	})
	return out, err
}

// UpdateFocalPoint applies mutate to the stored focal point; see
// UpdateAgency for etag and mutate.
func (s *Store) UpdateFocalPoint(ctx context.Context, op Op, name, etag string, mutate func(*exchangev1.FocalPoint) error) (*exchangev1.FocalPoint, error) {
	var out *exchangev1.FocalPoint
	err := s.update(ctx, op, func(w *writeTx) error {
		fp, err := focalPoints.modify(w, focalPointKey(name), name, etag, mutate)
		out = fp
		return err
	})
	return out, err
}

// DeleteFocalPoint removes a focal point; a non-empty etag must match.
func (s *Store) DeleteFocalPoint(ctx context.Context, op Op, name, etag string) error {
	return s.update(ctx, op, func(w *writeTx) error {
		_, err := focalPoints.delete(w, focalPointKey(name), name, etag)
		return err
	})
}

// FocalPointFilter selects focal points in ListFocalPoints.
type FocalPointFilter struct {
	// AgencyID limits the list to one agency; empty means all agencies.
	AgencyID string
	// Topic limits the list to one topic; empty means all topics.
	Topic string
	// ActiveOn keeps only focal points whose tenure includes this date.
	ActiveOn *exchangev1.CalendarDate
}

// ListFocalPoints returns one page of focal points matching f, ordered by
// agency, topic and tenure start.
func (s *Store) ListFocalPoints(ctx context.Context, f FocalPointFilter, p Page) ([]*exchangev1.FocalPoint, string, error) {
	day := DateNumber(f.ActiveOn)
	fp := query("focal_points", f.AgencyID, f.Topic, string(u32(day)))
	var prefix []byte
	if f.AgencyID != "" {
		prefix = joinKey(f.AgencyID, "")
		if f.Topic != "" {
			prefix = joinKey(f.AgencyID, f.Topic, "")
		}
	}
	var items []*exchangev1.FocalPoint
	var token string
	err := s.view(ctx, func(tx kv.Tx) error {
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucketFocalPointByTopic, prefix, p, fp, func(k, _ []byte) (*exchangev1.FocalPoint, bool, error) {
			// k = agency ∅ topic ∅ u32(start) id
			agencyID, rest, _ := bytes.Cut(k, []byte{sep})
			topic, rest, _ := bytes.Cut(rest, []byte{sep})
			if f.Topic != "" && string(topic) != f.Topic {
				return nil, false, nil
			}
			item, ok, err := focalPoints.get(tx, joinKey(string(agencyID), string(rest[4:])))
			if err != nil || !ok {
				return nil, false, err
			}
			return item, day == 0 || tenureIncludes(item.GetTenure(), day), nil
		})
		return err
	})
	return items, token, err
}
