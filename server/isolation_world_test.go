package server

// The world the isolation matrix and the randomized model check run in: a
// real exchange (real mTLS, real store) with agencies, working groups,
// certificates, focal points, referrals, datasets and plans, and the model
// of it kept in step. Also the watch streams and the read checks both tests
// share.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The callers of the isolation tests: five active agencies, one agency
// suspended in the directory (after it sent and received referrals and
// shared a plan), and the secretariat. "spare" is in the directory but
// never calls: the secretariat suspends and reactivates it.
var isoActive = []string{"agencies/ilo", "agencies/iom", "agencies/unicef", "agencies/ngo-kh", "agencies/moh-kh"}

const (
	isoSuspended = "agencies/nplo-la"
	isoSpare     = "agencies/spare"
	isoUNWG      = "workingGroups/un-wg"
	isoNGONet    = "workingGroups/ngo-net"
)

// isoHeartbeat is the watch heartbeat of the isolation tests' server: short,
// so that draining a watch is quick.
const isoHeartbeat = 150 * time.Millisecond

// isoWorld is a running exchange, connections for every caller, and the
// model of what is in it.
type isoWorld struct {
	t     testing.TB
	x     *exchange
	m     *model
	sec   as
	conns map[string]as // caller name → connection
	// callers are the callers of the tests, in a fixed order.
	callers []string
	// spareCerts are certificates no connection uses, one per agency, for
	// revocation attempts.
	spareCerts []string
	// deletableFPs are focal points the matrix may delete.
	deletableFPs []string
	hist         []isoSnapshot
	seq          atomic.Int64
}

// isoSnapshot is the model as it was once the store reached rev.
type isoSnapshot struct {
	rev int64
	m   *model
}

func bg() context.Context { return context.Background() }

// startIsolationExchange starts an exchange whose watches send a
// heartbeat every isoHeartbeat.
func startIsolationExchange(t testing.TB) *exchange {
	t.Helper()
	x := startExchange(t)
	x.stop()
	x.serveWith(func(c *Config) { c.WatchHeartbeat = isoHeartbeat })
	return x
}

func agencyID(name string) string { return strings.TrimPrefix(name, "agencies/") }

// conn returns the connection of a caller.
func (w *isoWorld) conn(caller string) as { return w.conns[caller] }

// record remembers the model as it is now, at the store's revision, so
// that a watch event can be judged against the world at its revision.
func (w *isoWorld) record() {
	w.hist = append(w.hist, isoSnapshot{rev: w.x.store.Revision(), m: w.m.clone()})
}

// at returns the model at a revision: the first snapshot at or after it.
func (w *isoWorld) at(rev int64) *model {
	i := sort.Search(len(w.hist), func(i int) bool { return w.hist[i].rev >= rev })
	if i == len(w.hist) {
		i--
	}
	return w.hist[i].m
}

// before returns the model just before a revision: the last snapshot
// before it.
func (w *isoWorld) before(rev int64) *model {
	i := sort.Search(len(w.hist), func(i int) bool { return w.hist[i].rev >= rev })
	if i > 0 {
		i--
	}
	return w.hist[i].m
}

// next returns a fresh number for ids.
func (w *isoWorld) next() int { return int(w.seq.Add(1)) }

func (w *isoWorld) must(err error, what string) {
	w.t.Helper()
	if err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
}

// buildIsolationWorld builds the world through the API.
func buildIsolationWorld(t testing.TB) *isoWorld {
	t.Helper()
	x := startIsolationExchange(t)
	sec := x.asSecretariat()
	w := &isoWorld{t: t, x: x, m: newModel(), sec: sec, conns: map[string]as{modelSecretariat: sec}}
	// The secretariat's certificate is recorded, as exchanged records it
	// at start.
	w.m.certs["certificates/"+sec.serial] = &mCert{name: "certificates/" + sec.serial, subject: modelSecretariat}
	everyone := append(append(slices.Clone(isoActive), isoSuspended), isoSpare)
	for _, a := range everyone {
		x.createAgency(sec, agencyID(a), exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, exchangev1.Niche_NICHE_PREVENTION)
		w.m.suspended[a] = false
	}
	// Every caller connects with a certificate issued through the API, so
	// that each has a certificate record; each agency gets a spare one.
	for _, a := range append(slices.Clone(isoActive), isoSuspended) {
		c := x.asIssuedAgency(sec, agencyID(a))
		c.agencyID = agencyID(a)
		w.conns[a] = c
		w.m.certs["certificates/"+c.serial] = &mCert{name: "certificates/" + c.serial, subject: a}
		resp, err := sec.certs.IssueCertificate(bg(), &exchangev1.IssueCertificateRequest{Subject: a, CsrDer: newCSR(t, pkiAgency(a))})
		w.must(err, "issue a spare certificate")
		name := resp.GetCertificate().GetName()
		w.m.certs[name] = &mCert{name: name, subject: a}
		w.spareCerts = append(w.spareCerts, name)
	}
	w.callers = append(append(slices.Clone(isoActive), isoSuspended), modelSecretariat)

	// Working groups: un-wg has ilo as its own secretariat, iom as a
	// member and unicef as an observer; ngo-net has ngo-kh and nplo-la as
	// members and moh-kh as an observer.
	w.group("un-wg", map[string]exchangev1.MembershipRole{
		"agencies/ilo": exchangev1.MembershipRole_MEMBERSHIP_ROLE_SECRETARIAT, "agencies/iom": exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER,
		"agencies/unicef": exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER,
	})
	w.group("ngo-net", map[string]exchangev1.MembershipRole{
		"agencies/ngo-kh": exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER, "agencies/nplo-la": exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER,
		"agencies/moh-kh": exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER,
	})

	// Focal points: one each, and one more each that the matrix may
	// delete.
	for _, a := range everyone {
		by := a
		if a == isoSpare {
			by = modelSecretariat
		}
		w.focalPoint(by, a)
		w.deletableFPs = append(w.deletableFPs, w.focalPoint(by, a))
	}

	// Referrals, in each state of sharing.
	w.refer("agencies/ilo", "agencies/iom")
	ack := w.refer("agencies/iom", "agencies/unicef")
	w.move("agencies/unicef", ack, rsReceived)
	fwd := w.refer("agencies/unicef", "agencies/ngo-kh")
	w.move("agencies/ngo-kh", fwd, rsReceived)
	w.forward("agencies/ngo-kh", fwd, "agencies/moh-kh")
	revoked := w.refer("agencies/moh-kh", "agencies/ilo")
	w.revokeConsent("agencies/moh-kh", revoked)
	// A forwarded referral whose consent is then revoked at its source:
	// unicef received it and forwarded it to iom.
	chain := w.refer("agencies/ilo", "agencies/unicef")
	w.move("agencies/unicef", chain, rsReceived)
	w.forward("agencies/unicef", chain, "agencies/iom")
	w.revokeConsent("agencies/ilo", chain)
	w.refer(isoSuspended, "agencies/ilo")
	w.refer("agencies/iom", isoSuspended)

	// Datasets with every kind of audience and contributor.
	w.dataset("agencies/ilo", "ds-private", func(d *exchangev1.Dataset) {})
	w.dataset("agencies/iom", "ds-named", func(d *exchangev1.Dataset) {
		d.Contributors = []string{"agencies/unicef"}
		d.Audience = &exchangev1.Audience{Agencies: []string{"agencies/ngo-kh"}}
	})
	w.dataset("agencies/unicef", "ds-groups", func(d *exchangev1.Dataset) {
		d.ContributorGroups = []string{isoNGONet}
		d.Audience = &exchangev1.Audience{WorkingGroups: []string{isoUNWG}}
	})
	w.dataset("agencies/ngo-kh", "ds-all", func(d *exchangev1.Dataset) {
		d.Audience = &exchangev1.Audience{AllMembers: true}
	})
	w.dataset("agencies/moh-kh", "ds-public", func(d *exchangev1.Dataset) {
		d.PublicAggregates, d.SuppressionThreshold = true, 3
	})
	w.dataset(isoSuspended, "ds-susp", func(d *exchangev1.Dataset) {
		d.Audience = &exchangev1.Audience{Agencies: []string{"agencies/ilo"}}
	})
	w.writeRow("agencies/ilo", "agencies/ilo/datasets/ds-private", "KH-12", 7)
	w.writeRow("agencies/iom", "agencies/iom/datasets/ds-named", "KH-12", 7)
	w.writeRow("agencies/unicef", "agencies/iom/datasets/ds-named", "KH-12", 7)
	w.writeRow("agencies/unicef", "agencies/unicef/datasets/ds-groups", "KH-12", 7)
	w.writeRow("agencies/ngo-kh", "agencies/unicef/datasets/ds-groups", "KH-12", 7)
	w.writeRow("agencies/ngo-kh", "agencies/ngo-kh/datasets/ds-all", "KH-12", 7)
	w.writeRow("agencies/moh-kh", "agencies/moh-kh/datasets/ds-public", "KH-12", 9)
	w.writeRow("agencies/moh-kh", "agencies/moh-kh/datasets/ds-public", "KH-2", 1)
	w.writeRow(isoSuspended, "agencies/nplo-la/datasets/ds-susp", "KH-12", 7)

	// Plans with every kind of audience, and several versions.
	w.plan("agencies/ilo", "KH-2", mAudience{})
	named := w.plan("agencies/iom", "KH-2", mAudience{agencies: []string{"agencies/unicef"}})
	w.updatePlan("agencies/iom", named, w.m.plans[named].current().audience, "Named, second draft")
	group := w.plan("agencies/unicef", "KH-12", mAudience{})
	w.updatePlan("agencies/unicef", group, mAudience{groups: []string{isoUNWG}}, "Shared with the UN working group")
	narrowed := w.plan("agencies/ngo-kh", "KH-2", mAudience{all: true})
	w.updatePlan("agencies/ngo-kh", narrowed, mAudience{all: true}, "For everyone, second draft")
	w.updatePlan("agencies/ngo-kh", narrowed, mAudience{agencies: []string{"agencies/ilo"}}, "Now for ilo only")
	cancelled := w.plan("agencies/moh-kh", "KH-12", mAudience{all: true})
	w.cancelPlan("agencies/moh-kh", cancelled)
	w.plan("agencies/moh-kh", "KH-12", mAudience{all: true})
	w.plan("agencies/ilo", "KH-12", mAudience{groups: []string{isoNGONet}})
	w.plan(isoSuspended, "KH-2", mAudience{all: true})

	_, err := sec.dir.SuspendAgency(bg(), &exchangev1.SuspendAgencyRequest{Name: isoSuspended, Reason: "membership lapsed"})
	w.must(err, "suspend "+isoSuspended)
	w.m.suspended[isoSuspended] = true
	w.record()
	return w
}

func pkiAgency(name string) pki.Identity { return pki.Agency(agencyID(name)) }

// group creates a working group as the secretariat.
func (w *isoWorld) group(id string, members map[string]exchangev1.MembershipRole) {
	w.t.Helper()
	g := &exchangev1.WorkingGroup{DisplayName: "Group " + id, Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP}
	for _, a := range slices.Sorted(maps.Keys(members)) {
		g.Members = append(g.Members, &exchangev1.Membership{Agency: a, Role: members[a]})
	}
	_, err := w.sec.dir.CreateWorkingGroup(bg(), &exchangev1.CreateWorkingGroupRequest{WorkingGroupId: id, WorkingGroup: g})
	w.must(err, "create working group "+id)
	w.m.groups["workingGroups/"+id] = members
}

// focalPoint creates a focal point of agency as by.
func (w *isoWorld) focalPoint(by, agency string) string {
	w.t.Helper()
	resp, err := w.conn(by).dir.CreateFocalPoint(bg(), isoFocalPointRequest(agency, w.next()))
	w.must(err, "create a focal point of "+agency)
	w.m.focalPoints[resp.GetFocalPoint().GetName()] = agency
	return resp.GetFocalPoint().GetName()
}

func isoFocalPointRequest(agency string, n int) *exchangev1.CreateFocalPointRequest {
	return &exchangev1.CreateFocalPointRequest{Parent: agency, RequestId: nextRequestID(), FocalPoint: &exchangev1.FocalPoint{
		DisplayName: fmt.Sprintf("Officer %d", n), Topic: fmt.Sprintf("topic-%d", n), Role: "Programme officer",
		Email: "fp@example.org", Tenure: &exchangev1.DatePeriod{Start: date(2024, 1, 1)},
	}}
}

// isoReferral is a valid referral to receiver.
func isoReferral(receiver string) *exchangev1.Referral {
	return newReferral(agencyID(receiver))
}

// refer sends a referral and returns its name.
func (w *isoWorld) refer(from, to string) string {
	w.t.Helper()
	resp, err := w.conn(from).referrals().CreateReferral(bg(), &exchangev1.CreateReferralRequest{Referral: isoReferral(to), RequestId: nextRequestID()})
	w.must(err, "refer from "+from+" to "+to)
	name := resp.GetReferral().GetName()
	w.m.addReferral(name, from, to, "")
	return name
}

// move acknowledges (to RECEIVED) or accepts (to ACCEPTED) a referral as
// its receiver.
func (w *isoWorld) move(by, name string, to exchangev1.ReferralState) {
	w.t.Helper()
	var err error
	switch to {
	case rsReceived:
		_, err = w.conn(by).referrals().AcknowledgeReferral(bg(), &exchangev1.AcknowledgeReferralRequest{Name: name})
	case rsAccepted:
		_, err = w.conn(by).referrals().AcceptReferral(bg(), &exchangev1.AcceptReferralRequest{Name: name})
	}
	w.must(err, "move "+name)
	w.m.referrals[name].state = to
}

// isoForward is a valid forward of name to receiver.
func isoForward(name, to string) *exchangev1.ForwardReferralRequest {
	return &exchangev1.ForwardReferralRequest{
		Name: name, Receiver: to, RequestId: nextRequestID(), SealedDetails: testBlob(),
		Service: &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Need: "counselling closer to home"},
		Consent: &exchangev1.Consent{
			GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_GUARDIAN, GivenTime: timestamppb.New(time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)),
			ReceivingAgency: to, Services: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		},
	}
}

// forward forwards a referral and returns the new one.
func (w *isoWorld) forward(by, name, to string) string {
	w.t.Helper()
	resp, err := w.conn(by).referrals().ForwardReferral(bg(), isoForward(name, to))
	w.must(err, "forward "+name)
	child := resp.GetReferral().GetName()
	w.m.addReferral(child, by, to, name)
	return child
}

func (w *isoWorld) revokeConsent(by, name string) {
	w.t.Helper()
	_, err := w.conn(by).referrals().RevokeReferralConsent(bg(), &exchangev1.RevokeReferralConsentRequest{Name: name, Reason: "withdrawn by the guardian"})
	w.must(err, "revoke consent on "+name)
	w.m.revoke(name)
}

// dataset creates a dataset from returnsDataset adjusted by set.
func (w *isoWorld) dataset(owner, id string, set func(*exchangev1.Dataset)) string {
	w.t.Helper()
	d := returnsDataset()
	set(d)
	resp, err := w.conn(owner).datasets().CreateDataset(bg(), &exchangev1.CreateDatasetRequest{Parent: owner, DatasetId: id, Dataset: d})
	w.must(err, "create dataset "+id)
	name := resp.GetDataset().GetName()
	w.m.datasets[name] = &mDataset{
		name: name, owner: owner, contributors: slices.Clone(d.GetContributors()), contributorGroups: slices.Clone(d.GetContributorGroups()),
		audience: audienceOf(d.GetAudience()), publicAggregates: d.GetPublicAggregates(), threshold: d.GetSuppressionThreshold(),
		writers: map[string]bool{}, locked: map[string]bool{},
	}
	return name
}

// isoRow is the one row key the tests write, per contributor and place.
func isoRow(location string, cases int64) *exchangev1.Row {
	return row("2026-01", location, "female", cases)
}

func (w *isoWorld) writeRow(by, dataset, location string, cases int64) {
	w.t.Helper()
	write(w.t, w.conn(by), dataset, isoRow(location, cases))
	w.m.datasets[dataset].writers[by+"|"+location] = true
}

// isoPlan is the body of the tests' plans: prevention in one province of
// Cambodia in 2026.
func isoPlan(externalID, subdivision string, a mAudience, title string) *exchangev1.Plan {
	p := newPlan(externalID)
	p.Locations = []*exchangev1.LocationRef{{Country: "KH", Subdivision: subdivision}}
	p.Audience = a.proto()
	p.Title = title
	return p
}

// plan creates a plan and returns its name.
func (w *isoWorld) plan(owner, subdivision string, a mAudience) string {
	w.t.Helper()
	ext := fmt.Sprintf("%s-%d", agencyID(owner), w.next())
	title := "Plan " + ext
	resp, err := w.conn(owner).plans().CreatePlan(bg(), &exchangev1.CreatePlanRequest{Parent: owner, Plan: isoPlan(ext, subdivision, a, title), RequestId: nextRequestID()})
	w.must(err, "create plan as "+owner)
	name := resp.GetPlan().GetName()
	w.m.plans[name] = &mPlan{name: name, owner: owner, externalID: ext, versions: []mPlanVersion{{audience: a, subdivision: subdivision, title: title}}}
	return name
}

// planUpdate is an UpdatePlan request that sets the audience and title of
// a plan the model knows.
func (m *model) planUpdate(name string, a mAudience, title string) *exchangev1.UpdatePlanRequest {
	p := m.plans[name]
	body := isoPlan(p.externalID, p.current().subdivision, a, title)
	body.Name = name
	return &exchangev1.UpdatePlanRequest{Plan: body}
}

// applyPlanUpdate records the new version an update makes (none when it
// changes nothing).
func (m *model) applyPlanUpdate(name string, a mAudience, title string) {
	p := m.plans[name]
	cur := p.current()
	if cur.audience.equal(a) && cur.title == title {
		return
	}
	p.versions = append(p.versions, mPlanVersion{audience: a, subdivision: cur.subdivision, title: title})
}

func (m *model) applyPlanCancel(name string) {
	p := m.plans[name]
	v := p.current()
	v.cancelled = true
	p.versions = append(p.versions, v)
}

func (w *isoWorld) updatePlan(owner, name string, a mAudience, title string) {
	w.t.Helper()
	_, err := w.conn(owner).plans().UpdatePlan(bg(), w.m.planUpdate(name, a, title))
	w.must(err, "update plan "+name)
	w.m.applyPlanUpdate(name, a, title)
}

func (w *isoWorld) cancelPlan(owner, name string) {
	w.t.Helper()
	_, err := w.conn(owner).plans().CancelPlan(bg(), &exchangev1.CancelPlanRequest{Name: name, Reason: "merged into another plan"})
	w.must(err, "cancel plan "+name)
	w.m.applyPlanCancel(name)
}

// datasetUpdate is an UpdateDataset request changing the masked fields of
// a dataset to the model's values.
func (m *model) datasetUpdate(name string, paths ...string) *exchangev1.UpdateDatasetRequest {
	d := m.datasets[name]
	body := returnsDataset(d.contributors...)
	body.Name = name
	body.ContributorGroups = slices.Clone(d.contributorGroups)
	body.Audience = d.audience.proto()
	body.PublicAggregates, body.SuppressionThreshold = d.publicAggregates, d.threshold
	body.Description = "updated by the isolation tests"
	return &exchangev1.UpdateDatasetRequest{Dataset: body, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}}
}

// twinOf returns a name of the same length and kind that names nothing:
// the last segment's letters and digits become "z" ("f" for certificate
// serials).
func twinOf(name string) string {
	i := strings.LastIndex(name, "/")
	fill := byte('z')
	if strings.HasPrefix(name, "certificates/") {
		fill = 'f'
	}
	b := []byte(name)
	for j := i + 1; j < len(b); j++ {
		if b[j] != '-' {
			b[j] = fill
		}
	}
	return string(b)
}

// ---- answers ----

// answerProblem compares an answer with a verdict: "" when they agree.
func answerProblem(want verdict, err error) string {
	st := status.Convert(err)
	if st.Code() != want.code() {
		return fmt.Sprintf("want %v, got %v %q", want, st.Code(), st.Message())
	}
	if want != vAllow && reason(st) != want.reason() {
		return fmt.Sprintf("want %v, got %v with reason %q %q", want, st.Code(), reason(st), st.Message())
	}
	return ""
}

// sameStatus reports whether two statuses are byte-identical once the
// twin's name is replaced by the real one (the names have the same
// length, so the encoding's lengths do not move).
func sameStatus(realErr, twinErr error, realName, twinName string) (bool, string) {
	if len(realName) != len(twinName) {
		return false, fmt.Sprintf("names of different lengths: %q %q", realName, twinName)
	}
	enc := proto.MarshalOptions{Deterministic: true}
	a, err1 := enc.Marshal(status.Convert(realErr).Proto())
	b, err2 := enc.Marshal(status.Convert(twinErr).Proto())
	if err1 != nil || err2 != nil {
		return false, fmt.Sprint(err1, err2)
	}
	b = bytes.ReplaceAll(b, []byte(twinName), []byte(realName))
	if bytes.Equal(a, b) {
		return true, ""
	}
	return false, fmt.Sprintf("invisible: %v\n\t\tmissing:   %v", status.Convert(realErr).Proto(), status.Convert(twinErr).Proto())
}

// ---- watches ----

// isoWatchMsg is one message of a watch, or the error that ended it.
type isoWatchMsg struct {
	rev       int64
	heartbeat bool
	referral  *exchangev1.WatchReferralsResponse
	plan      *exchangev1.WatchPlansResponse
	rows      []*exchangev1.Row
	err       error
	// at is when the message arrived.
	at time.Time
}

// isoWatch is an open watch of one caller.
type isoWatch struct {
	caller  string
	kind    string // "referrals", "plans" or "rows"
	dataset string
	msgs    chan isoWatchMsg
	cancel  context.CancelFunc
	done    bool
	judged  int64 // the revision the last drain caught up with
}

func (w *isoWatch) String() string {
	if w.kind == "rows" {
		return w.caller + " WatchDatasetRows " + w.dataset
	}
	return w.caller + " Watch" + strings.ToUpper(w.kind[:1]) + w.kind[1:]
}

// openWatch opens a watch from a revision (0 for now) and pumps its
// messages into a channel.
func openWatch(c as, caller, kind, dataset string, from int64) *isoWatch {
	ctx, cancel := context.WithCancel(bg())
	wt := &isoWatch{caller: caller, kind: kind, dataset: dataset, msgs: make(chan isoWatchMsg, 100000), cancel: cancel}
	var recv func() (isoWatchMsg, error)
	var openErr error
	switch kind {
	case "referrals":
		s, err := c.referrals().WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{StartRevision: from})
		openErr = err
		recv = func() (isoWatchMsg, error) {
			ev, err := s.Recv()
			if err != nil {
				return isoWatchMsg{}, err
			}
			return isoWatchMsg{rev: ev.GetRevision(), heartbeat: ev.GetKind() == exchangev1.ReferralEventKind_REFERRAL_EVENT_KIND_HEARTBEAT, referral: ev}, nil
		}
	case "plans":
		s, err := c.plans().WatchPlans(ctx, &exchangev1.WatchPlansRequest{StartRevision: from})
		openErr = err
		recv = func() (isoWatchMsg, error) {
			ev, err := s.Recv()
			if err != nil {
				return isoWatchMsg{}, err
			}
			return isoWatchMsg{rev: ev.GetRevision(), heartbeat: ev.GetKind() == exchangev1.PlanEventKind_PLAN_EVENT_KIND_HEARTBEAT, plan: ev}, nil
		}
	case "rows":
		s, err := c.datasets().WatchDatasetRows(ctx, &exchangev1.WatchDatasetRowsRequest{Dataset: dataset, StartRevision: from})
		openErr = err
		recv = func() (isoWatchMsg, error) {
			ev, err := s.Recv()
			if err != nil {
				return isoWatchMsg{}, err
			}
			return isoWatchMsg{rev: ev.GetRevision(), heartbeat: len(ev.GetRows()) == 0, rows: ev.GetRows()}, nil
		}
	}
	go func() {
		defer close(wt.msgs)
		if openErr != nil {
			wt.msgs <- isoWatchMsg{err: openErr}
			return
		}
		for {
			msg, err := recv()
			if err != nil {
				wt.msgs <- isoWatchMsg{err: err, at: time.Now()}
				return
			}
			msg.at = time.Now()
			wt.msgs <- msg
		}
	}()
	return wt
}

// first waits for the first message: the error a refused watch ends
// with, or nil.
func (wt *isoWatch) first() (isoWatchMsg, error) {
	select {
	case msg, ok := <-wt.msgs:
		if !ok {
			return isoWatchMsg{}, errors.New("watch closed")
		}
		return msg, msg.err
	case <-time.After(10 * time.Second):
		return isoWatchMsg{}, errors.New("no first message within 10s")
	}
}

// drain reads what the watch sent until it has caught up: for referral
// and plan watches, a message at or past the revision target; for row
// watches (whose heartbeats carry the last row's revision), two heartbeats
// arrived after the drain began, the second of which the server can only
// send after it has read every row written before.
func (wt *isoWatch) drain(target int64) ([]isoWatchMsg, error) {
	var got []isoWatchMsg
	beats, began := 0, time.Now()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case msg, ok := <-wt.msgs:
			if !ok {
				return got, io.ErrUnexpectedEOF
			}
			if msg.err != nil {
				if status.Code(msg.err) == codes.Canceled {
					return got, io.ErrUnexpectedEOF
				}
				return got, msg.err
			}
			got = append(got, msg)
			if wt.kind == "rows" {
				if msg.heartbeat && msg.at.After(began) {
					if beats++; beats == 2 {
						return got, nil
					}
				}
			} else if msg.rev >= target {
				return got, nil
			}
		case <-deadline:
			return got, fmt.Errorf("%s did not catch up with revision %d within 20s", wt, target)
		}
	}
}

// drainAndJudge drains every watch (together) and judges what each sent
// against the world at each message's revision.
func (w *isoWorld) drainAndJudge(tl *isoTally, watches []*isoWatch) {
	target := w.x.store.Revision()
	var wg sync.WaitGroup
	for _, wt := range watches {
		if wt.done {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs, err := wt.drain(target)
			since := wt.judged
			wt.judged = target
			if err != nil && w.watchMayEnd(since, target, wt, err) {
				wt.done = true // ended as it must: the caller lost access
			} else if err != nil {
				tl.problem("watch", fmt.Sprintf("%s: %v", wt, err))
			}
			tl.watchEvents.Add(int64(len(msgs)))
			for _, l := range w.watchLeaks(wt, msgs, false) {
				tl.leak(l)
			}
		}()
	}
	wg.Wait()
}

// watchLeaks judges watch messages against the model at each message's
// revision: what the caller was not allowed to see then, or details it
// may never see in a watch.
func (w *isoWorld) watchLeaks(wt *isoWatch, msgs []isoWatchMsg, replay bool) []string {
	var leaks []string
	caller := wt.caller
	for _, msg := range msgs {
		if msg.heartbeat && msg.rows == nil {
			continue
		}
		at := func(rev int64) *model {
			if replay {
				return w.m
			}
			return w.at(rev)
		}
		switch wt.kind {
		case "referrals":
			r := msg.referral.GetReferral()
			m := at(msg.rev)
			mr := m.referrals[r.GetName()]
			switch {
			case !replay && m.suspended[caller]:
				leaks = append(leaks, fmt.Sprintf("%s: event on %s at revision %d while %s was suspended", wt, r.GetName(), msg.rev, caller))
			case mr == nil || !m.referralParty(caller, mr):
				leaks = append(leaks, fmt.Sprintf("%s: event on %s (%s→%s), which it is not party to", wt, r.GetName(), r.GetSender(), r.GetReceiver()))
			case r.GetSubject() != nil || r.GetSealedDetails() != nil:
				leaks = append(leaks, fmt.Sprintf("%s: event on %s carries identifying details", wt, r.GetName()))
			}
		case "plans":
			p := msg.plan.GetPlan()
			m := at(msg.rev)
			mp := m.plans[p.GetName()]
			if !replay && m.suspended[caller] {
				leaks = append(leaks, fmt.Sprintf("%s: %v of %s at revision %d while %s was suspended", wt, msg.plan.GetKind(), p.GetName(), msg.rev, caller))
				continue
			}
			if mp == nil {
				leaks = append(leaks, fmt.Sprintf("%s: %v of %s, a plan the model does not know", wt, msg.plan.GetKind(), p.GetName()))
				continue
			}
			if msg.plan.GetKind() == exchangev1.PlanEventKind_PLAN_EVENT_KIND_REMOVED {
				saw := false
				if replay {
					for _, v := range mp.versions {
						saw = saw || m.seesVersion(caller, mp, v)
					}
				} else {
					prev := w.before(msg.rev)
					saw = prev.plans[p.GetName()] != nil && prev.seesPlan(caller, prev.plans[p.GetName()])
				}
				if !saw {
					leaks = append(leaks, fmt.Sprintf("%s: REMOVED for %s, which it never saw", wt, p.GetName()))
				}
				continue
			}
			v := int(p.GetVersion())
			if v < 1 || v > len(mp.versions) || !m.seesVersion(caller, mp, mp.versions[v-1]) {
				leaks = append(leaks, fmt.Sprintf("%s: %v of %s version %d (audience %v), which it may not see", wt, msg.plan.GetKind(), p.GetName(), v, audienceOrNil(mp, v)))
			}
		case "rows":
			for _, r := range msg.rows {
				m := at(r.GetRevision())
				d := m.datasets[wt.dataset]
				switch {
				case !replay && m.suspended[caller]:
					leaks = append(leaks, fmt.Sprintf("%s: row of %s at revision %d while %s was suspended", wt, r.GetContributor(), r.GetRevision(), caller))
				case d == nil || !m.readsDataset(caller, d):
					leaks = append(leaks, fmt.Sprintf("%s: row of %s written at revision %d, when it could not read the dataset (audience %v, contributors %v, groups %v)",
						wt, r.GetContributor(), r.GetRevision(), d.audience, d.contributors, d.contributorGroups))
				}
			}
		}
	}
	return leaks
}

func audienceOrNil(p *mPlan, v int) any {
	if v < 1 || v > len(p.versions) {
		return nil
	}
	return p.versions[v-1].audience
}

// ---- reads ----

// isoTally counts what a test did, for the figures it reports.
type isoTally struct {
	attempts     atomic.Int64 // calls made
	cross        atomic.Int64 // calls about a resource the caller does not own
	refusals     atomic.Int64 // calls the model refuses
	unexpected   atomic.Int64 // calls the model refuses that succeeded
	wrong        atomic.Int64 // other answers that differ from the model
	leaks        atomic.Int64 // allowed answers that show too much
	twins        atomic.Int64 // NOT_FOUND compared byte for byte with a missing name
	twinsDiffer  atomic.Int64 // of which differed
	watchEvents  atomic.Int64 // watch messages judged
	mu           sync.Mutex
	problems     []string
	problemKinds map[string]int
	seen         map[string]bool
}

// problem records a failure of a kind; the first few of each kind are
// kept for the report.
func (tl *isoTally) problem(kind, msg string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.problemKinds == nil {
		tl.problemKinds, tl.seen = map[string]int{}, map[string]bool{}
	}
	tl.problemKinds[kind]++
	if len(tl.seen) < 1000 && !tl.seen[msg] && tl.problemKinds[kind] <= 40 {
		tl.seen[msg] = true
		if n := len(tl.problems); n < 60 && countPrefix(tl.problems, kind+": ") < 4 {
			tl.problems = append(tl.problems, kind+": "+msg)
		}
	}
}

func countPrefix(s []string, prefix string) int {
	n := 0
	for _, x := range s {
		if strings.HasPrefix(x, prefix) {
			n++
		}
	}
	return n
}

// report fails the test with the problems found, grouped by kind.
func (tl *isoTally) report(t testing.TB) {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.problems) == 0 {
		return
	}
	var kinds []string
	for k, n := range tl.problemKinds {
		kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(kinds)
	t.Errorf("%d kinds of problem: %s\nfirst of each:\n\t%s", len(kinds), strings.Join(kinds, "; "), strings.Join(tl.problems, "\n\t"))
}

// judge compares one answer with the model's verdict and counts it.
func (tl *isoTally) judge(kind, what string, want verdict, err error) bool {
	tl.attempts.Add(1)
	if want.refused() {
		tl.refusals.Add(1)
	}
	p := answerProblem(want, err)
	if p == "" {
		return true
	}
	if want.refused() && err == nil {
		tl.unexpected.Add(1)
		tl.problem("unexpected success", what+": "+p)
	} else {
		tl.wrong.Add(1)
		tl.problem("wrong answer", what+": "+p)
	}
	return false
}

func (tl *isoTally) leak(what string) {
	tl.leaks.Add(1)
	kind := "leak"
	for _, tok := range strings.Fields(what) {
		if tok = strings.TrimRight(tok, ":,"); methodToken.MatchString(tok) {
			kind += " in " + tok
			break
		}
	}
	if strings.Contains(what, "suspended") {
		kind += " to a suspended agency"
	}
	tl.problem(kind, what)
}

// methodToken matches "GetReferral" and "ReferralService/GetReferral".
var methodToken = regexp.MustCompile(`^([A-Z][A-Za-z]+/)?[A-Z][A-Za-z]+$`)

// listAll pages through a list with the largest page.
func listAll[T any](fetch func(token string) ([]T, string, error)) ([]T, error) {
	var out []T
	token := ""
	for {
		items, next, err := fetch(token)
		if err != nil {
			return out, err
		}
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		token = next
	}
}

func diffSets(got, want []string) string {
	var extra, missing []string
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	for _, x := range want {
		if !slices.Contains(got, x) {
			missing = append(missing, x)
		}
	}
	if len(extra) == 0 && len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("extra %v, missing %v", extra, missing)
}

// checkReferral judges GetReferral of a caller on a name.
func (w *isoWorld) checkReferral(tl *isoTally, m *model, caller, name string) {
	resp, err := w.conn(caller).referrals().GetReferral(bg(), &exchangev1.GetReferralRequest{Name: name})
	want := m.door(caller, exchangev1.ReferralService_GetReferral_FullMethodName)
	if want == 0 {
		want = m.getReferral(caller, name)
	}
	if r := m.referrals[name]; r != nil && !m.referralParty(caller, r) {
		tl.cross.Add(1)
	}
	what := fmt.Sprintf("%s GetReferral %s", caller, name)
	if !tl.judge("GetReferral", what, want, err) || want != vAllow {
		return
	}
	for _, f := range referralFindings(m, caller, resp.GetReferral(), true) {
		if f.leak {
			tl.leak(what + ": " + f.msg)
		} else {
			tl.wrong.Add(1)
			tl.problem("wrong answer", what+": "+f.msg)
		}
	}
}

// revokedAncestor names where a referral's consent was revoked.
func revokedAncestor(m *model, name string) string {
	r := m.referrals[name]
	for r.parent != "" && m.referrals[r.parent].revoked {
		r = m.referrals[r.parent]
	}
	return r.name
}

// checkLists judges the caller's lists and counts against the model.
func (w *isoWorld) checkLists(tl *isoTally, m *model, caller string) {
	c := w.conn(caller)
	if v := m.door(caller, exchangev1.ReferralService_ListReferrals_FullMethodName); v != 0 {
		_, err := c.referrals().ListReferrals(bg(), &exchangev1.ListReferralsRequest{})
		tl.judge("ListReferrals", caller+" ListReferrals", v, err)
		return
	}
	refs, err := listAll(func(tok string) ([]*exchangev1.Referral, string, error) {
		r, err := c.referrals().ListReferrals(bg(), &exchangev1.ListReferralsRequest{PageSize: 1000, PageToken: tok})
		return r.GetReferrals(), r.GetNextPageToken(), err
	})
	if tl.judge("ListReferrals", caller+" ListReferrals", vAllow, err) {
		var names []string
		for _, r := range refs {
			names = append(names, r.GetName())
			if r.GetSubject() != nil || r.GetSealedDetails() != nil {
				tl.leak(caller + " ListReferrals: identifying details in a summary of " + r.GetName())
			}
		}
		if d := diffSets(names, m.referralsOf(caller)); d != "" {
			tl.leak(caller + " ListReferrals: " + d)
		}
	}
	stats, err := c.referrals().GetReferralStatistics(bg(), &exchangev1.GetReferralStatisticsRequest{})
	if tl.judge("GetReferralStatistics", caller+" GetReferralStatistics", vAllow, err) {
		var n int64
		for _, k := range stats.GetCounts() {
			n += k.GetCount()
		}
		if n != int64(m.referralCount(caller)) {
			tl.leak(fmt.Sprintf("%s GetReferralStatistics: counts add up to %d, model %d", caller, n, m.referralCount(caller)))
		}
	}
	ds, err := listAll(func(tok string) ([]*exchangev1.Dataset, string, error) {
		r, err := c.datasets().ListDatasets(bg(), &exchangev1.ListDatasetsRequest{PageSize: 1000, PageToken: tok})
		return r.GetDatasets(), r.GetNextPageToken(), err
	})
	if tl.judge("ListDatasets", caller+" ListDatasets", vAllow, err) {
		var names []string
		for _, d := range ds {
			names = append(names, d.GetName())
		}
		if d := diffSets(names, m.datasetsOf(caller)); d != "" {
			tl.leak(caller + " ListDatasets: " + d)
		}
	}
	plans, err := listAll(func(tok string) ([]*exchangev1.Plan, string, error) {
		r, err := c.plans().ListPlans(bg(), &exchangev1.ListPlansRequest{Parent: "agencies/-", PageSize: 1000, PageToken: tok})
		return r.GetPlans(), r.GetNextPageToken(), err
	})
	if tl.judge("ListPlans", caller+" ListPlans", vAllow, err) {
		var names []string
		for _, p := range plans {
			names = append(names, p.GetName())
			if mp := m.plans[p.GetName()]; mp != nil && int(p.GetVersion()) != len(mp.versions) {
				tl.wrong.Add(1)
				tl.problem("wrong answer", fmt.Sprintf("%s ListPlans: %s at version %d, model %d", caller, p.GetName(), p.GetVersion(), len(mp.versions)))
			}
		}
		if d := diffSets(names, m.plansOf(caller, "")); d != "" {
			tl.leak(caller + " ListPlans: " + d)
		}
	}
	cov, err := c.plans().GetCoverage(bg(), &exchangev1.GetCoverageRequest{Country: "KH", Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}})
	if tl.judge("GetCoverage", caller+" GetCoverage", vAllow, err) {
		w.checkCoverage(tl, m, caller, cov)
	}
}

func (w *isoWorld) checkCoverage(tl *isoTally, m *model, caller string, cov *exchangev1.GetCoverageResponse) {
	want := m.coverage(caller)
	got := map[string][]string{}
	for _, c := range cov.GetCells() {
		got[c.GetSubdivision()] = c.GetAgencies()
		if n := m.planCount(caller, c.GetSubdivision()); c.GetPlanCount() != n {
			tl.leak(fmt.Sprintf("%s GetCoverage: %s counts %d plans, model %d", caller, c.GetSubdivision(), c.GetPlanCount(), n))
		}
	}
	for sub, owners := range got {
		if !slices.Equal(owners, want[sub]) {
			tl.leak(fmt.Sprintf("%s GetCoverage: %s shows %v, model %v", caller, sub, owners, want[sub]))
		}
	}
	for sub, owners := range want {
		if _, ok := got[sub]; !ok {
			tl.wrong.Add(1)
			tl.problem("wrong answer", fmt.Sprintf("%s GetCoverage: %s missing (model %v)", caller, sub, owners))
		}
	}
}

// checkDataset judges GetDataset.
func (w *isoWorld) checkDataset(tl *isoTally, m *model, caller, name string) {
	resp, err := w.conn(caller).datasets().GetDataset(bg(), &exchangev1.GetDatasetRequest{Name: name})
	want := m.door(caller, exchangev1.DatasetService_GetDataset_FullMethodName)
	if want == 0 {
		want = m.datasetRead(caller, name)
	}
	if d := m.datasets[name]; d != nil && d.owner != caller {
		tl.cross.Add(1)
	}
	if tl.judge("GetDataset", caller+" GetDataset "+name, want, err) && want == vAllow && resp.GetDataset().GetOwner() != m.datasets[name].owner {
		tl.wrong.Add(1)
		tl.problem("wrong answer", fmt.Sprintf("%s GetDataset %s: owner %s", caller, name, resp.GetDataset().GetOwner()))
	}
}

// checkPlan judges GetPlan at a version.
func (w *isoWorld) checkPlan(tl *isoTally, m *model, caller, name string, version int) {
	resp, err := w.conn(caller).plans().GetPlan(bg(), &exchangev1.GetPlanRequest{Name: name, Version: int32(version)})
	want := m.door(caller, exchangev1.PlanService_GetPlan_FullMethodName)
	if want == 0 {
		want = m.getPlan(caller, name, version)
	}
	if p := m.plans[name]; p != nil && p.owner != caller {
		tl.cross.Add(1)
	}
	what := fmt.Sprintf("%s GetPlan %s version %d", caller, name, version)
	if !tl.judge("GetPlan", what, want, err) || want != vAllow {
		return
	}
	p := m.plans[name]
	wantVersion := version
	if version == 0 {
		wantVersion = len(p.versions)
	}
	if int(resp.GetPlan().GetVersion()) != wantVersion || resp.GetPlan().GetOwner() != p.owner {
		tl.wrong.Add(1)
		tl.problem("wrong answer", fmt.Sprintf("%s: got version %d of %s", what, resp.GetPlan().GetVersion(), resp.GetPlan().GetOwner()))
	}
}

// watchMayEnd reports whether a watch ended as the model says it must, at
// some moment since the last drain: its caller's agency was suspended
// (PERMISSION_DENIED), or a row watcher could no longer read the dataset
// (NOT_FOUND, exactly as if it were gone).
func (w *isoWorld) watchMayEnd(since, until int64, wt *isoWatch, err error) bool {
	me := callerAgency(wt.caller)
	for _, snap := range w.hist {
		if snap.rev <= since || snap.rev > until {
			continue
		}
		m := snap.m
		switch status.Code(err) {
		case codes.PermissionDenied:
			if me != "" && m.suspended[me] {
				return true
			}
		case codes.NotFound:
			if d := m.datasets[wt.dataset]; wt.kind == "rows" && (d == nil || !m.readsDataset(wt.caller, d)) {
				return true
			}
		}
	}
	return false
}
