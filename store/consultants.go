package store

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// consultantCollection and engagementCollection are the collection ids in
// "agencies/{agency}/consultants/{consultant}/engagements/{engagement}".
const (
	consultantCollection = "/consultants/"
	engagementCollection = "/engagements/"
)

// consultantIDLen is the length of consultant and engagement ids (newID).
const consultantIDLen = 26

// consultants keeps the roster. The change log keeps no personal field of a
// consultant (consultantForLog), so that erasing the record erases them
// from the database: the log outlives the record's earlier versions.
var consultants = table[*exchangev1.Consultant]{
	bucket: bucketConsultants,
	newT:   func() *exchangev1.Consultant { return new(exchangev1.Consultant) },
	logged: consultantForLog,
}

// engagements keeps the bookings of consultants.
var engagements = table[*exchangev1.Engagement]{
	bucket: bucketEngagements,
	newT:   func() *exchangev1.Engagement { return new(exchangev1.Engagement) },
}

// consultantForLog encodes what the change log keeps of a consultant: its
// name, owner, erasure and bookkeeping fields, never the profile.
func consultantForLog(c *exchangev1.Consultant, _ []byte) ([]byte, error) {
	return marshal(&exchangev1.Consultant{
		Name: c.GetName(), Owner: c.GetOwner(), Erased: c.GetErased(), EraseTime: c.GetEraseTime(),
		CreateTime: c.GetCreateTime(), UpdateTime: c.GetUpdateTime(), Etag: c.GetEtag(),
	})
}

// ConsultantName returns "agencies/{agencyID}/consultants/{id}".
func ConsultantName(agencyID, id string) string {
	return AgencyPrefix + agencyID + consultantCollection + id
}

// SplitConsultantName returns the agency id and consultant id of
// "agencies/{agency}/consultants/{consultant}"; ok is false for anything
// else.
func SplitConsultantName(name string) (agencyID, id string, ok bool) {
	rest, found := strings.CutPrefix(name, AgencyPrefix)
	if !found {
		return "", "", false
	}
	agencyID, id, ok = strings.Cut(rest, consultantCollection)
	return agencyID, id, ok && agencyID != "" && len(id) == consultantIDLen
}

// SplitEngagementName returns the consultant's name and the engagement id
// of "agencies/{agency}/consultants/{consultant}/engagements/{engagement}".
func SplitEngagementName(name string) (consultant, id string, ok bool) {
	consultant, id, ok = strings.Cut(name, engagementCollection)
	_, _, cok := SplitConsultantName(consultant)
	return consultant, id, ok && cok && len(id) == consultantIDLen
}

func consultantKey(name string) []byte {
	agencyID, id, _ := SplitConsultantName(name)
	return joinKey(agencyID, id)
}

func engagementKey(name string) []byte {
	consultant, id, _ := SplitEngagementName(name)
	_, cid, _ := SplitConsultantName(consultant)
	return joinKey(cid, id)
}

// ConsultantProfileFields are the fields erasure clears: the consultant's
// personal data.
var ConsultantProfileFields = []string{
	"display_name", "contact_email", "languages", "niches", "provinces", "availability", "consent",
}

// IsListed reports whether other agencies may see the consultant: consent
// is recorded and the profile is not erased.
func IsListed(c *exchangev1.Consultant) bool {
	return c.GetConsent().GetGivenOn() != nil && !c.GetErased()
}

// CreateConsultant adds a consultant under "agencies/{agencyID}"; the
// owner and bookkeeping fields are set here. A retry with the same
// Op.RequestID returns the consultant the first call added.
func (s *Store) CreateConsultant(ctx context.Context, op Op, agencyID string, c *exchangev1.Consultant) (*exchangev1.Consultant, error) {
	var out *exchangev1.Consultant
	err := s.update(ctx, op, func(w *writeTx) error {
		if name, ok := w.replayed(); ok {
			got, found, err := consultants.get(w.tx, consultantKey(name))
			if err != nil || !found {
				return internal("request id refers to a missing consultant", err)
			}
			out = got
			return nil
		}
		v := proto.Clone(c).(*exchangev1.Consultant)
		v.Owner, v.Erased, v.EraseTime = AgencyPrefix+agencyID, false, nil
		id := newID(w.now)
		created, err := consultants.create(w, joinKey(agencyID, id), ConsultantName(agencyID, id), v)
		out = created
		return err
	})
	return out, err
}

// GetConsultant returns the consultant; KindNotFound when there is none.
func (s *Store) GetConsultant(ctx context.Context, name string) (*exchangev1.Consultant, error) {
	var out *exchangev1.Consultant
	err := s.view(ctx, func(tx kv.Tx) error {
		c, ok, err := consultants.get(tx, consultantKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(name)
		}
		out = c
		return nil
	})
	return out, err
}

// UpdateConsultant applies mutate to the stored consultant (see
// UpdateAgency for etag and mutate). mutate cannot change the owner or
// the erasure fields; an erased consultant fails with
// KindFailedPrecondition.
func (s *Store) UpdateConsultant(ctx context.Context, op Op, name, etag string, mutate func(*exchangev1.Consultant) error) (*exchangev1.Consultant, error) {
	var out *exchangev1.Consultant
	err := s.update(ctx, op, func(w *writeTx) error {
		c, err := consultants.modify(w, consultantKey(name), name, etag, func(c *exchangev1.Consultant) error {
			if c.GetErased() {
				return &Error{Kind: KindFailedPrecondition, Resource: name, Message: name + " is erased and cannot change"}
			}
			orig := proto.Clone(c).(*exchangev1.Consultant)
			if err := mutate(c); err != nil {
				return err
			}
			for _, f := range []string{"owner", "erased", "erase_time"} {
				copyField(c, orig, f)
			}
			return nil
		})
		out = c
		return err
	})
	return out, err
}

// EraseConsultant clears the consultant's personal fields
// (ConsultantProfileFields) and marks it erased, in one audited change;
// its engagements stay. check runs first on the stored consultant and may
// refuse. As EraseReferralDetails, it returns once a scrub has overwritten
// the pages that held the profile, or with KindUnavailable when that could
// not finish in time (the erasure is made and the scrub goes on). Erasing
// an erased consultant fails with KindFailedPrecondition.
func (s *Store) EraseConsultant(ctx context.Context, op Op, name string, check func(*exchangev1.Consultant) error) (*exchangev1.Consultant, error) {
	var out *exchangev1.Consultant
	var done erasure
	err := s.updateUsingReserve(ctx, op, func(w *writeTx) error {
		c, err := consultants.modify(w, consultantKey(name), name, "", func(c *exchangev1.Consultant) error {
			if err := check(c); err != nil {
				return err
			}
			if c.GetErased() {
				return &Error{Kind: KindFailedPrecondition, Resource: name, Message: name + " is already erased"}
			}
			for _, f := range ConsultantProfileFields {
				_, fd := field(c, f)
				c.ProtoReflect().Clear(fd)
			}
			c.Erased, c.EraseTime = true, w.timestamp()
			return nil
		})
		if err != nil {
			return err
		}
		out, done = c, s.erasureIn(w.tx, 1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, s.awaitScrub(ctx, done, "the profile of "+name+" is")
}

// ConsultantFilter selects consultants in ListConsultants.
type ConsultantFilter struct {
	// AgencyID limits the list to one adding agency; empty means all.
	AgencyID string
	// Keep, when set, decides on each consultant (visibility and filters).
	Keep func(*exchangev1.Consultant) bool
	// Fingerprint identifies the query's other filters, for page tokens.
	Fingerprint string
}

// ListConsultants returns one page of consultants ordered by adding agency
// id, then creation.
func (s *Store) ListConsultants(ctx context.Context, f ConsultantFilter, p Page) ([]*exchangev1.Consultant, string, error) {
	var prefix []byte
	if f.AgencyID != "" {
		prefix = joinKey(f.AgencyID, "")
	}
	var items []*exchangev1.Consultant
	var token string
	err := s.view(ctx, func(tx kv.Tx) error {
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucketConsultants, prefix, p, query("consultants", f.AgencyID, f.Fingerprint), func(_, v []byte) (*exchangev1.Consultant, bool, error) {
			c := new(exchangev1.Consultant)
			if err := unmarshal(v, c); err != nil {
				return nil, false, err
			}
			return c, f.Keep == nil || f.Keep(c), nil
		})
		return err
	})
	return items, token, err
}

// dateNumber is a calendar date as yyyymmdd, which orders like the date.
func dateNumber(d *exchangev1.CalendarDate) int32 {
	return d.GetYear()*10000 + d.GetMonth()*100 + d.GetDay()
}

// CreateEngagement books the consultant for "agencies/{agencyID}". check
// runs first, in the write, on the stored consultant and may refuse. The
// period must have an end. A period that overlaps (shares a day with)
// another standing (not cancelled) engagement of the consultant fails with KindFailedPrecondition
// naming that engagement as Resource, with its agency and dates in the
// message. A retry with the same Op.RequestID returns the first
// engagement.
func (s *Store) CreateEngagement(ctx context.Context, op Op, consultant, agencyID string, e *exchangev1.Engagement, check func(*exchangev1.Consultant) error) (*exchangev1.Engagement, error) {
	var out *exchangev1.Engagement
	err := s.update(ctx, op, func(w *writeTx) error {
		if name, ok := w.replayed(); ok {
			got, found, err := engagements.get(w.tx, engagementKey(name))
			if err != nil || !found {
				return internal("request id refers to a missing engagement", err)
			}
			out = got
			return nil
		}
		c, ok, err := consultants.get(w.tx, consultantKey(consultant))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(consultant)
		}
		if err := check(c); err != nil {
			return err
		}
		start, end := dateNumber(e.GetPeriod().GetStart()), dateNumber(e.GetPeriod().GetEnd())
		if e.GetPeriod().GetEnd() == nil || end < start {
			return &Error{Kind: KindInvalidArgument, Field: "engagement.period.end", Message: "engagement.period.end: required, on or after the start"}
		}
		_, cid, _ := SplitConsultantName(consultant)
		prefix := joinKey(cid, "")
		cur := w.tx.Bucket(bucketEngagements).Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			other := new(exchangev1.Engagement)
			if err := unmarshal(v, other); err != nil {
				return err
			}
			from, to := dateNumber(other.GetPeriod().GetStart()), dateNumber(other.GetPeriod().GetEnd())
			if other.GetCancelTime() == nil && start <= to && from <= end {
				return &Error{Kind: KindFailedPrecondition, Resource: other.GetName(), Field: "engagement.period",
					Message: fmt.Sprintf("engagement.period: %s is already engaged by %s from %s to %s (%s)",
						consultant, other.GetAgency(), formatDate(other.GetPeriod().GetStart()), formatDate(other.GetPeriod().GetEnd()), other.GetName())}
			}
		}
		v := proto.Clone(e).(*exchangev1.Engagement)
		v.Agency = AgencyPrefix + agencyID
		id := newID(w.now)
		created, err := engagements.create(w, joinKey(cid, id), consultant+engagementCollection+id, v)
		out = created
		return err
	})
	return out, err
}

// GetEngagement returns an engagement; KindNotFound when there is none.
func (s *Store) GetEngagement(ctx context.Context, name string) (*exchangev1.Engagement, error) {
	if _, _, ok := SplitEngagementName(name); !ok {
		return nil, notFound(name)
	}
	var out *exchangev1.Engagement
	err := s.view(ctx, func(tx kv.Tx) error {
		e, err := storedEngagement(tx, name)
		out = e
		return err
	})
	return out, err
}

// storedEngagement reads the engagement named name. Its key holds the
// consultant's id but not the adding agency's, so a name under another
// agency would find the same record: the stored name must match.
func storedEngagement(tx kv.Tx, name string) (*exchangev1.Engagement, error) {
	e, ok, err := engagements.get(tx, engagementKey(name))
	if err != nil {
		return nil, err
	}
	if !ok || e.GetName() != name {
		return nil, notFound(name)
	}
	return e, nil
}

// CancelEngagement cancels a standing engagement that has not ended,
// recording when and why; its weeks are then free for another booking.
// check runs first, in the write, on the stored engagement and may refuse.
// A non-empty etag must match. One already cancelled, or whose last day is
// before the day of the write (UTC), fails with KindFailedPrecondition:
// the record of who engaged whom stays as it was.
func (s *Store) CancelEngagement(ctx context.Context, op Op, name, etag, reason string, check func(*exchangev1.Engagement) error) (*exchangev1.Engagement, error) {
	if _, _, ok := SplitEngagementName(name); !ok {
		return nil, notFound(name)
	}
	var out *exchangev1.Engagement
	err := s.update(ctx, op, func(w *writeTx) error {
		e, err := storedEngagement(w.tx, name)
		if err != nil {
			return err
		}
		if err := check(e); err != nil {
			return err
		}
		if e.GetCancelTime() != nil {
			return &Error{Kind: KindFailedPrecondition, Resource: name,
				Message: fmt.Sprintf("%s was already cancelled on %s", name, e.GetCancelTime().AsTime().UTC().Format("2006-01-02"))}
		}
		y, m, d := w.now.UTC().Date()
		today := &exchangev1.CalendarDate{Year: int32(y), Month: int32(m), Day: int32(d)}
		if end := e.GetPeriod().GetEnd(); dateNumber(end) < dateNumber(today) {
			return &Error{Kind: KindFailedPrecondition, Resource: name,
				Message: fmt.Sprintf("%s ended on %s; an engagement that has ended stays as it was", name, formatDate(end))}
		}
		out, err = engagements.modify(w, engagementKey(name), name, etag, func(e *exchangev1.Engagement) error {
			e.CancelTime = w.timestamp()
			e.CancelReason = reason
			return nil
		})
		return err
	})
	return out, err
}

// formatDate writes a calendar date as yyyy-mm-dd.
func formatDate(d *exchangev1.CalendarDate) string {
	return fmt.Sprintf("%04d-%02d-%02d", d.GetYear(), d.GetMonth(), d.GetDay())
}

// ListEngagements returns one page of the consultant's engagements, in
// booking order; keep, when set, decides on each. KindNotFound when the
// consultant does not exist.
func (s *Store) ListEngagements(ctx context.Context, consultant string, keep func(*exchangev1.Engagement) bool, p Page) ([]*exchangev1.Engagement, string, error) {
	_, cid, _ := SplitConsultantName(consultant)
	var items []*exchangev1.Engagement
	var token string
	err := s.view(ctx, func(tx kv.Tx) error {
		if _, ok, err := consultants.get(tx, consultantKey(consultant)); err != nil {
			return err
		} else if !ok {
			return notFound(consultant)
		}
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucketEngagements, joinKey(cid, ""), p, query("engagements", consultant), func(_, v []byte) (*exchangev1.Engagement, bool, error) {
			e := new(exchangev1.Engagement)
			if err := unmarshal(v, e); err != nil {
				return nil, false, err
			}
			return e, keep == nil || keep(e), nil
		})
		return err
	})
	return items, token, err
}
