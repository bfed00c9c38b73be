package store

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// ReferralPrefix starts every referral resource name.
const ReferralPrefix = "referrals/"

// referralRequestScope is the idempotency scope of referral creation, the
// same for CreateReferral and BatchCreateReferrals so that a retry through
// either never duplicates.
const referralRequestScope = "referrals.create"

// Sides of a referral in the party index.
const (
	sideReceiver = 'i' // the agency's inbox
	sideSender   = 'o' // the agency's outbox
)

var referrals = table[*exchangev1.Referral]{
	bucket:  bucketReferrals,
	newT:    func() *exchangev1.Referral { return new(exchangev1.Referral) },
	indexes: referralIndexes,
	stampNew: func(r *exchangev1.Referral, name string, created, updated *timestamppb.Timestamp) {
		r.Name, r.CreateTime, r.UpdateTime = name, created, updated
	},
	// Identifying details never enter the change log: watchers get
	// summaries, and the log is kept longer than a referral may be.
	logged: func(r *exchangev1.Referral, encoded []byte) ([]byte, error) {
		if !r.DetailsWithheld {
			// A stored record: what the log keeps is the record without
			// its subject and case notes, saying its details are
			// withheld, cut from the record's own encoding rather than
			// encoded again (which took 2% of the batched push's CPU).
			if b, ok := withoutDetails(encoded); ok {
				return b, nil
			}
		}
		subject, notes, withheld := r.Subject, r.CaseNotes, r.DetailsWithheld
		defer func() { r.Subject, r.CaseNotes, r.DetailsWithheld = subject, notes, withheld }()
		r.Subject, r.CaseNotes, r.DetailsWithheld = nil, "", true
		return marshal(r)
	},
}

// detailsWithheldField is the field number of Referral.details_withheld,
// and detailsWithheldTrue that field set, encoded.
var (
	detailsWithheldField = (&exchangev1.Referral{}).ProtoReflect().Descriptor().Fields().ByName("details_withheld").Number()
	detailsWithheldTrue  = protowire.AppendVarint(protowire.AppendTag(nil, detailsWithheldField, protowire.VarintType), 1)
)

// subjectField and caseNotesField are the field numbers of
// Referral.subject and Referral.case_notes.
var (
	subjectField   = (&exchangev1.Referral{}).ProtoReflect().Descriptor().Fields().ByName("subject").Number()
	caseNotesField = (&exchangev1.Referral{}).ProtoReflect().Descriptor().Fields().ByName("case_notes").Number()
)

// withoutDetails returns the deterministic encoding of the referral whose
// deterministic encoding is b, without details_withheld, with its subject
// and case notes removed and details_withheld set: the encoding of the
// referral as the change log keeps it. Deterministic encodings are in
// field-number order, so dropping two fields and putting one in at its
// place gives the same bytes as encoding the changed referral. ok is false
// when b does not parse or already holds details_withheld.
func withoutDetails(b []byte) ([]byte, bool) {
	out := make([]byte, 0, len(b)+len(detailsWithheldTrue))
	inserted := false
	for at := 0; at < len(b); {
		n, typ, tagLen := protowire.ConsumeTag(b[at:])
		if tagLen < 0 || n == detailsWithheldField {
			return nil, false
		}
		valLen := protowire.ConsumeFieldValue(n, typ, b[at+tagLen:])
		if valLen < 0 {
			return nil, false
		}
		if !inserted && n > detailsWithheldField {
			out, inserted = append(out, detailsWithheldTrue...), true
		}
		if n != subjectField && n != caseNotesField {
			out = append(out, b[at:at+tagLen+valLen]...)
		}
		at += tagLen + valLen
	}
	if !inserted {
		out = append(out, detailsWithheldTrue...)
	}
	return out, true
}

func referralID(name string) string { return strings.TrimPrefix(name, ReferralPrefix) }

func referralIndexes(r *exchangev1.Referral) []indexEntry {
	id := referralID(r.GetName())
	return []indexEntry{
		{bucketReferralByParty, referralPartyKey(strings.TrimPrefix(r.GetSender(), AgencyPrefix), id, sideSender)},
		{bucketReferralByParty, referralPartyKey(strings.TrimPrefix(r.GetReceiver(), AgencyPrefix), id, sideReceiver)},
	}
}

// referralPartyKey is agency ∅ newest-first(id) ∅ side.
func referralPartyKey(agencyID, id string, side byte) []byte {
	// Built in place, one allocation: joinKey(agencyID, newestFirst(id),
	// "") and side.
	k := make([]byte, 0, len(agencyID)+len(id)+3)
	k = append(k, agencyID...)
	k = append(k, sep)
	k = appendNewestFirst(k, id)
	return append(k, sep, side)
}

// newestFirst maps an id to one that sorts in the opposite order, so that
// a forward cursor walks the newest referrals first.
func newestFirst(id string) string {
	return string(appendNewestFirst(nil, id))
}

// appendNewestFirst appends newestFirst(id) to b.
func appendNewestFirst(b []byte, id string) []byte {
	for i := range len(id) {
		c := id[i]
		if j := strings.IndexByte(idAlphabet, c); j >= 0 {
			c = idAlphabet[len(idAlphabet)-1-j]
		}
		b = append(b, c)
	}
	return b
}

// NewReferral is one referral to create: the caller's idempotency key and
// the referral, whose sender is the Op's actor.
type NewReferral struct {
	// RequestID is the sender's idempotency key.
	RequestID string
	// Referral is the referral as sent; output-only fields are ignored.
	Referral *exchangev1.Referral
	// Owned hands Referral over to the store: the store sets its
	// server-set fields in it and may return it (or parts of it) as the
	// created referral, instead of working on a copy. Only a caller that
	// never reads or changes Referral again sets it (the server does, with
	// the requests it decoded for the call): copying each referral showed
	// in the batched push's profile.
	Owned bool
}

// CreatedReferral is the result of creating one referral.
type CreatedReferral struct {
	// Referral is the stored referral (for a duplicate, the one created
	// by the first request).
	Referral *exchangev1.Referral
	// Duplicate is true when an earlier request with the same request id
	// created the referral.
	Duplicate bool
	// Err is why this referral was not stored.
	Err error
}

// CreateReferrals stores referrals sent by op.Actor, all in one
// transaction (one fsync), each at its own revision. Each is judged on its
// own: a refused one (unknown or suspended receiver) is reported in its
// result and does not stop the others.
func (s *Store) CreateReferrals(ctx context.Context, op Op, items []NewReferral) ([]CreatedReferral, error) {
	// Everything that does not depend on the stored state is done here,
	// before the write queues for the single writer.
	ready := make([]preparedReferral, len(items))
	now := s.now().UTC()
	for i, item := range items {
		r := item.Referral
		if !item.Owned {
			r = proto.Clone(r).(*exchangev1.Referral)
		}
		p, err := prepareReferral(op.Actor, item.RequestID, r, "", now)
		if err != nil {
			return nil, err
		}
		ready[i] = p
	}
	var results []CreatedReferral
	err := s.update(ctx, op, func(w *writeTx) error {
		results = make([]CreatedReferral, len(items))
		receivers := map[string]error{}
		for i, item := range items {
			r, dup, err := insertReferral(w, op.Actor, item.RequestID, ready[i], receivers)
			results[i] = CreatedReferral{Referral: r, Duplicate: dup, Err: err}
			if err != nil && KindOf(err) == KindInternal {
				return err
			}
		}
		return nil
	})
	return results, err
}

// preparedReferral is a new referral made ready outside the write
// transaction: its record stamped and encoded, its client-sealed details
// apart, and the referral as the sender gets it back.
type preparedReferral struct {
	record   prepared[*exchangev1.Referral]
	details  []byte               // sealed_details as the client sent them
	created  *exchangev1.Referral // record.value with its details put back, as returned
	receiver string
	// forwardedFrom is the referral this one was forwarded from, if any.
	forwardedFrom string
}

// prepareReferral makes r, sent by sender (and forwarded from
// forwardedFrom, if not empty), ready to be inserted: a new id, the
// server-set fields, the client-sealed details split off. It sets them in
// r itself, which the caller must own (a copy, or a NewReferral's Owned
// referral).
func prepareReferral(sender, requestID string, r *exchangev1.Referral, forwardedFrom string, now time.Time) (preparedReferral, error) {
	r.Sender = sender
	r.State = exchangev1.ReferralState_REFERRAL_STATE_REQUESTED
	r.History = []*exchangev1.Transition{{
		Actor: sender, Time: timestamppb.New(now), ToState: exchangev1.ReferralState_REFERRAL_STATE_REQUESTED, Reason: "referred",
	}}
	r.Rejection, r.Outcome, r.ForwardedTo = nil, nil, nil
	r.ForwardedFrom = forwardedFrom
	r.Overdue, r.DetailsWithheld = false, false
	if r.Consent != nil {
		r.Consent.RevokeTime = nil
	}
	id := newID(now)
	r.RequestId = requestID
	return prepareClientSealed(id, r, forwardedFrom, now)
}

// insertReferral stores a prepared referral inside w, unless sender's
// requestID already created one (then that one is returned, with true).
// receivers remembers, for the transaction run, which receivers were
// checked and with what result.
func insertReferral(w *writeTx, sender, requestID string, p preparedReferral, receivers map[string]error) (*exchangev1.Referral, bool, error) {
	reqKey := requestKey(sender, referralRequestScope, requestID)
	if p.forwardedFrom != "" {
		reqKey = requestKey(sender, "referrals.forward", requestID)
	}
	if v := w.tx.Bucket(bucketRequests).Get(reqKey); v != nil {
		id := referralID(string(v))
		got, ok, err := referrals.get(w.tx, []byte(id))
		if err != nil || !ok {
			return nil, false, internal("request id refers to a missing referral", err)
		}
		// The first referral as it was returned, its sealed details
		// included (unless erased since).
		if err := openDetails(w.tx, id, got); err != nil {
			return nil, false, err
		}
		return got, true, nil
	}
	err, checked := receivers[p.receiver]
	if !checked {
		err = checkReceiver(w.tx, p.receiver)
		receivers[p.receiver] = err
	}
	if err != nil {
		return nil, false, err
	}
	if _, err := referrals.insert(w, p.record); err != nil {
		return nil, false, err
	}
	if err := storeDetails(w.tx, string(p.record.key), p.details); err != nil {
		return nil, false, err
	}
	if requestID != "" {
		if err := w.tx.Bucket(bucketRequests).Put(reqKey, []byte(p.record.name)); err != nil {
			return nil, false, internal("cannot record the request id", err)
		}
	}
	return p.created, false, nil
}

// checkReceiver refuses a receiver that is not in the directory or is
// suspended.
func checkReceiver(tx kv.Tx, receiver string) error {
	agency, ok, err := agencies.get(tx, agencyKey(receiver))
	if err != nil {
		return err
	}
	if !ok {
		return &Error{Kind: KindInvalidArgument, Resource: receiver, Field: "referral.receiver",
			Message: "referral.receiver: " + receiver + " is not in the directory"}
	}
	if agency.GetState() != exchangev1.AgencyState_AGENCY_STATE_ACTIVE {
		return &Error{Kind: KindFailedPrecondition, Resource: receiver, Field: "referral.receiver",
			Message: "referral.receiver: " + receiver + " is suspended and cannot receive referrals"}
	}
	return nil
}

// GetReferral returns the stored referral, identifying details included;
// callers decide what the reader may see.
func (s *Store) GetReferral(ctx context.Context, name string) (*exchangev1.Referral, error) {
	var out *exchangev1.Referral
	err := s.view(ctx, func(tx kv.Tx) error {
		var err error
		out, err = readReferral(tx, name)
		return err
	})
	return out, err
}

// readReferral reads the named referral with its sealed details, in tx.
func readReferral(tx kv.Tx, name string) (*exchangev1.Referral, error) {
	r, ok, err := referrals.get(tx, []byte(referralID(name)))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound(name)
	}
	if err := openDetails(tx, referralID(name), r); err != nil {
		return nil, err
	}
	return r, nil
}

// UpdateReferral applies mutate to the stored referral (see UpdateAgency
// for etag and mutate). Only its agencies (and the exchange) may: to
// anyone else it is NotFound, as if missing (referral_parties.go). mutate
// decides whether the caller may make the change at all.
func (s *Store) UpdateReferral(ctx context.Context, op Op, name, etag string, mutate func(*exchangev1.Referral) error) (*exchangev1.Referral, error) {
	var out *exchangev1.Referral
	err := s.update(ctx, op, func(w *writeTx) error {
		if err := checkParty(w.tx, op.Actor, name); err != nil {
			return err
		}
		r, err := referrals.modify(w, []byte(referralID(name)), name, etag, mutate)
		out = r
		return err
	})
	return out, err
}

// RevokeReferralConsent applies mutate to the referral and marks consent
// revoked at the transaction's time on it and, transitively, on every
// referral it was forwarded to, in one transaction. Only the referral's
// agencies may (see UpdateReferral); the referrals it was forwarded to
// follow it whoever their parties are.
func (s *Store) RevokeReferralConsent(ctx context.Context, op Op, name string, mutate func(*exchangev1.Referral) error) (*exchangev1.Referral, error) {
	var out *exchangev1.Referral
	err := s.update(ctx, op, func(w *writeTx) error {
		if err := checkParty(w.tx, op.Actor, name); err != nil {
			return err
		}
		revoke := func(r *exchangev1.Referral) {
			if r.Consent == nil {
				r.Consent = &exchangev1.Consent{}
			}
			if r.Consent.RevokeTime == nil {
				r.Consent.RevokeTime = w.timestamp()
			}
		}
		r, err := referrals.modify(w, []byte(referralID(name)), name, "", func(r *exchangev1.Referral) error {
			if err := mutate(r); err != nil {
				return err
			}
			revoke(r)
			return nil
		})
		if err != nil {
			return err
		}
		out = r
		queue := append([]string(nil), r.GetForwardedTo()...)
		for len(queue) > 0 {
			child := queue[0]
			queue = queue[1:]
			c, err := referrals.modify(w, []byte(referralID(child)), child, "", func(c *exchangev1.Referral) error {
				revoke(c)
				c.History = append(c.History, &exchangev1.Transition{Actor: op.Actor, Time: w.timestamp(),
					FromState: c.GetState(), ToState: c.GetState(), Reason: "consent revoked on " + name})
				return nil
			})
			if err != nil {
				return err
			}
			queue = append(queue, c.GetForwardedTo()...)
		}
		return nil
	})
	return out, err
}

// ForwardReferral creates child, sent by op.Actor, linked to the referral
// named parent, after mutateParent (which checks the caller may forward it
// in its current state) — both in one transaction. A retry with the same
// request id returns the first child. Only the parent's agencies may (see
// UpdateReferral).
func (s *Store) ForwardReferral(ctx context.Context, op Op, parent, requestID string, mutateParent func(*exchangev1.Referral) error, child *exchangev1.Referral) (*exchangev1.Referral, error) {
	ready, err := prepareReferral(op.Actor, requestID, proto.Clone(child).(*exchangev1.Referral), parent, s.now().UTC())
	if err != nil {
		return nil, err
	}
	var out *exchangev1.Referral
	err = s.update(ctx, op, func(w *writeTx) error {
		if err := checkParty(w.tx, op.Actor, parent); err != nil {
			return err
		}
		if v := w.tx.Bucket(bucketRequests).Get(requestKey(op.Actor, "referrals.forward", requestID)); v != nil {
			got, _, dupErr := insertReferral(w, op.Actor, requestID, ready, map[string]error{})
			out = got
			return dupErr
		}
		if _, err := referrals.modify(w, []byte(referralID(parent)), parent, "", mutateParent); err != nil {
			return err
		}
		created, _, err := insertReferral(w, op.Actor, requestID, ready, map[string]error{})
		if err != nil {
			return err
		}
		out = created
		// Link the parent to the child now that the child has a name.
		_, err = referrals.modify(w, []byte(referralID(parent)), parent, "", func(p *exchangev1.Referral) error {
			p.ForwardedTo = append(p.ForwardedTo, created.GetName())
			return nil
		})
		return err
	})
	return out, err
}

// ReferralFilter selects referrals in ListReferrals.
type ReferralFilter struct {
	// AgencyID is the agency whose referrals are listed (required).
	AgencyID string
	// Inbox and Outbox select the sides; both false means both.
	Inbox, Outbox bool
	// Keep, when set, decides on each referral after the index filters.
	Keep func(*exchangev1.Referral) bool
	// Fingerprint identifies the query's other filters, for page tokens.
	Fingerprint string
}

// ListReferrals returns one page of the agency's referrals, newest first,
// and a safe revision (SafeRevision) the page includes every change up
// to: a watch from it misses nothing, though it may repeat a change the
// page already shows.
func (s *Store) ListReferrals(ctx context.Context, f ReferralFilter, p Page) ([]*exchangev1.Referral, string, int64, error) {
	fp := query("referrals", f.AgencyID, boolKey(f.Inbox), boolKey(f.Outbox), f.Fingerprint)
	prefix := joinKey(f.AgencyID, "")
	var items []*exchangev1.Referral
	var token string
	rev, err := s.SafeRevision(ctx) // before the read: it sees every change up to rev
	if err != nil {
		return nil, "", 0, err
	}
	err = s.view(ctx, func(tx kv.Tx) error {
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucketReferralByParty, prefix, p, fp, func(k, _ []byte) (*exchangev1.Referral, bool, error) {
			side := k[len(k)-1]
			if (f.Inbox || f.Outbox) && !(f.Inbox && side == sideReceiver || f.Outbox && side == sideSender) {
				return nil, false, errPassOver // the other side, from the key alone
			}
			rest := k[len(prefix) : len(k)-2]
			r, ok, err := referrals.get(tx, []byte(newestFirst(string(rest))))
			if err != nil || !ok {
				return nil, false, err
			}
			return r, f.Keep == nil || f.Keep(r), nil
		})
		return err
	})
	return items, token, rev, err
}

func boolKey(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// ReferralCountKey groups referral counts.
type ReferralCountKey struct {
	// State of the referrals counted.
	State exchangev1.ReferralState
	// Niche of the service requested.
	Niche exchangev1.Niche
	// Location is the province, or the country when no province was named.
	Location string
}

// CountReferrals counts referrals by state, niche and location: all of
// them for an empty agencyID, else those the agency sent or received.
func (s *Store) CountReferrals(ctx context.Context, agencyID string) (map[ReferralCountKey]int64, error) {
	counts := map[ReferralCountKey]int64{}
	add := func(r *exchangev1.Referral) {
		loc := r.GetLocation().GetSubdivision()
		if loc == "" {
			loc = r.GetLocation().GetCountry()
		}
		counts[ReferralCountKey{r.GetState(), r.GetService().GetNiche(), loc}]++
	}
	err := s.view(ctx, func(tx kv.Tx) error {
		if agencyID == "" {
			return tx.Bucket(bucketReferrals).ForEach(func(_, v []byte) error {
				r := new(exchangev1.Referral)
				if err := unmarshal(v, r); err != nil {
					return err
				}
				add(r)
				return nil
			})
		}
		prefix := joinKey(agencyID, "")
		seen := map[string]bool{}
		c := tx.Bucket(bucketReferralByParty).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := newestFirst(string(k[len(prefix) : len(k)-2]))
			if seen[id] {
				continue
			}
			seen[id] = true
			r, ok, err := referrals.get(tx, []byte(id))
			if err != nil {
				return err
			}
			if ok {
				add(r)
			}
		}
		return nil
	})
	return counts, err
}
