package server

// The isolation matrix: every RPC of every service, as every caller (five
// agencies, the secretariat, an agency suspended in the directory),
// against every resource of the world (others' and the caller's own) and
// against a name of nothing, each answer checked against the model.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// mxAttempt is one request of the matrix, made by every caller.
type mxAttempt struct {
	label string
	// owners are the agencies the resource belongs to (for the count of
	// cross-agency attempts); none for requests about no one resource.
	owners []string
	// name is the resource name in the request; twin a name of nothing of
	// the same length. When the model says NOT_FOUND the request is made
	// again with the twin and both statuses must be byte-identical.
	name, twin string
	// twinFor, when set, chooses the twin per caller ("" for none).
	twinFor func(caller string) string
	// want is the model's verdict for a caller admitted at the door.
	want func(caller string) verdict
	// call makes the request with name (or its twin) as c.
	call func(c as, name string) (any, error)
	// check finds what an allowed answer shows that it should not.
	check func(caller string, resp any) []finding
	// apply changes the model after an allowed call succeeded.
	apply func(caller string, resp any)
	// skip leaves a caller out (a caller allowed to change the resource
	// on only some of them, so that the world keeps variety).
	skip func(caller string) bool
}

// finding is something wrong in an allowed answer: a leak, or a wrong
// answer that shows less than it should.
type finding struct {
	leak bool
	msg  string
}

func leakf(format string, args ...any) finding {
	return finding{leak: true, msg: fmt.Sprintf(format, args...)}
}

func wrongf(format string, args ...any) finding {
	return finding{msg: fmt.Sprintf(format, args...)}
}

// mxEntry drives one method.
type mxEntry struct {
	method   string
	attempts func() []mxAttempt
}

func TestIsolationMatrix(t *testing.T) {
	t.Parallel()
	w := buildIsolationWorld(t)
	tl := &isoTally{}
	entries := w.matrixEntries()

	methods := w.x.server.Methods()
	covered := map[string]bool{}
	for _, e := range entries {
		covered[e.method] = true
		if !slices.Contains(methods, e.method) {
			t.Errorf("the matrix drives %s, which the server does not register", e.method)
		}
	}
	for _, m := range methods {
		if !covered[m] {
			t.Errorf("method %s has no entry in the isolation matrix (isolation_matrix_test.go) and no rule in the model: add both", m)
		}
		if modelMethodKinds[shortMethod(m)] == 0 {
			t.Errorf("method %s has no kind in modelMethodKinds (isolation_model_test.go)", m)
		}
	}

	// Live watches, opened before the matrix changes anything.
	var live []*isoWatch
	for _, c := range w.callers {
		if w.m.suspended[c] {
			continue
		}
		live = append(live, openWatch(w.conn(c), c, "referrals", "", w.x.store.Revision()))
		live = append(live, openWatch(w.conn(c), c, "plans", "", w.x.store.Revision()))
		for _, d := range w.m.datasetsOf(c) {
			live = append(live, openWatch(w.conn(c), c, "rows", d, w.x.store.Revision()))
		}
	}
	defer func() {
		for _, wt := range live {
			wt.cancel()
		}
	}()

	start := time.Now()
	for _, e := range entries {
		w.runEntry(t, tl, e)
	}
	matrixTime := time.Since(start)

	// Drain the live watches and judge every message against the world at
	// its revision.
	w.drainAndJudge(tl, live)

	t.Logf("isolation matrix: %d methods × %d callers (%d agencies, 1 suspended agency, the secretariat) in %v",
		len(entries), len(w.callers), len(isoActive), matrixTime.Round(time.Millisecond))
	t.Logf("isolation matrix: %d attempts, %d of them on resources of other agencies; %d refusals expected by the model; "+
		"%d unexpected successes; %d other wrong answers; %d leaks in allowed answers and watches",
		tl.attempts.Load(), tl.cross.Load(), tl.refusals.Load(), tl.unexpected.Load(), tl.wrong.Load(), tl.leaks.Load())
	t.Logf("isolation matrix: %d NOT_FOUND answers compared byte for byte with a missing name, %d differed; %d live watch messages (%d watches) judged",
		tl.twins.Load(), tl.twinsDiffer.Load(), tl.watchEvents.Load(), len(live))
	tl.report(t)
}

// verdictFor is the model's verdict for one caller on one attempt. A
// method that has no access rule yet is refused to all (default deny).
func (w *isoWorld) verdictFor(method string, a mxAttempt, caller string) verdict {
	if d := w.m.door(caller, method); d == vSuspended {
		return d
	} else if _, ok := accessRules[method]; !ok {
		return vRole
	} else if d != 0 {
		return d
	}
	return a.want(caller)
}

func (w *isoWorld) runEntry(t *testing.T, tl *isoTally, e mxEntry) {
	if _, ok := accessRules[e.method]; !ok {
		t.Logf("%s has no access rule yet: the matrix expects every caller refused (default deny)", e.method)
	}
	for _, a := range e.attempts() {
		// Callers the model refuses change nothing, and neither do reads:
		// they go concurrently. Then the callers allowed to change the
		// resource go one by one, and the model follows each change.
		var together, oneByOne []string
		for _, c := range w.callers {
			if a.apply == nil || w.verdictFor(e.method, a, c).refused() {
				together = append(together, c)
			} else {
				oneByOne = append(oneByOne, c)
			}
		}
		var wg sync.WaitGroup
		for _, c := range together {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.attempt(tl, e, a, c)
			}()
		}
		wg.Wait()
		for _, c := range oneByOne {
			w.attempt(tl, e, a, c)
		}
	}
}

// attempt makes one request of the matrix as one caller and judges the
// answer.
func (w *isoWorld) attempt(tl *isoTally, e mxEntry, a mxAttempt, c string) {
	if a.skip != nil && a.skip(c) {
		return
	}
	want := w.verdictFor(e.method, a, c)
	resp, err := a.call(w.conn(c), a.name)
	if len(a.owners) > 0 && !slices.Contains(a.owners, c) {
		tl.cross.Add(1)
	}
	label := fmt.Sprintf("%s %s %s", c, shortMethod(e.method), a.label)
	if tl.judge(e.method, label, want, err) && want == vAllow {
		if a.apply != nil {
			a.apply(c, resp)
			w.record()
		}
		if a.check != nil {
			for _, f := range a.check(c, resp) {
				if f.leak {
					tl.leak(label + ": " + f.msg)
				} else {
					tl.wrong.Add(1)
					tl.problem("wrong answer", label+": "+f.msg)
				}
			}
		}
	}
	twin := a.twin
	if a.twinFor != nil {
		twin = a.twinFor(c)
	}
	if want == vInvisible && twin != "" {
		_, twinErr := a.call(w.conn(c), twin)
		tl.twins.Add(1)
		if ok, diff := sameStatus(err, twinErr, a.name, twin); !ok {
			tl.twinsDiffer.Add(1)
			tl.problem("NOT_FOUND differs from a missing name", label+": "+diff)
		}
	}
}

// ---- the resources of the world, in a fixed order ----

func (w *isoWorld) referralNames() []string { return slices.Sorted(keysOf(w.m.referrals)) }
func (w *isoWorld) datasetNames() []string  { return slices.Sorted(keysOf(w.m.datasets)) }
func (w *isoWorld) planNames() []string     { return slices.Sorted(keysOf(w.m.plans)) }
func (w *isoWorld) certNames() []string     { return slices.Sorted(keysOf(w.m.certs)) }
func (w *isoWorld) agencyNames() []string   { return slices.Sorted(keysOf(w.m.suspended)) }
func (w *isoWorld) groupNames() []string    { return slices.Sorted(keysOf(w.m.groups)) }
func (w *isoWorld) fpNames() []string       { return slices.Sorted(keysOf(w.m.focalPoints)) }

func keysOf[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// perReferral makes one attempt per referral.
func (w *isoWorld) perReferral(label string, want func(c, name string) verdict, call func(c as, name string) (any, error),
	apply func(c, name string, resp any), skip func(i int, c, name string) bool) []mxAttempt {
	var out []mxAttempt
	for i, name := range w.referralNames() {
		r := w.m.referrals[name]
		a := mxAttempt{
			label: fmt.Sprintf("%s %s (%s→%s)", label, name, agencyID(r.sender), agencyID(r.receiver)), owners: []string{r.sender, r.receiver},
			name: name, twin: twinOf(name), want: func(c string) verdict { return want(c, name) }, call: call,
		}
		if apply != nil {
			a.apply = func(c string, resp any) { apply(c, name, resp) }
		}
		if skip != nil {
			a.skip = func(c string) bool { return skip(i, c, name) }
		}
		// Every answer that carries a referral shows it as its caller
		// may see it.
		a.check = func(c string, resp any) []finding {
			r, ok := resp.(interface{ GetReferral() *exchangev1.Referral })
			if !ok {
				return nil
			}
			_, full := resp.(*exchangev1.GetReferralResponse)
			return referralFindings(w.m, c, r.GetReferral(), full)
		}
		out = append(out, a)
	}
	return out
}

// referralFindings compares a referral in an answer with the model: its
// parties and state, and whether it shows the identifying details. Only
// GetReferral must show them (full); other answers may leave them out.
func referralFindings(m *model, caller string, r *exchangev1.Referral, full bool) []finding {
	mr := m.referrals[r.GetName()]
	if mr == nil {
		return []finding{leakf("answered with %s, which the model does not know", r.GetName())}
	}
	var out []finding
	if r.GetSender() != mr.sender || r.GetReceiver() != mr.receiver || r.GetState() != mr.state {
		out = append(out, wrongf("%s is %s→%s %v, model %s→%s %v", r.GetName(), r.GetSender(), r.GetReceiver(), r.GetState(), mr.sender, mr.receiver, mr.state))
	}
	details := r.GetSubject() != nil || r.GetSealedDetails() != nil
	switch want := m.referralDetails(caller, r.GetName()); {
	case details && !want:
		out = append(out, leakf("%s shows the identifying details (subject %v, %d bytes sealed) although consent was revoked on %s", r.GetName(), r.GetSubject(), len(r.GetSealedDetails()), revokedAncestor(m, r.GetName())))
	case !details && want && full && !m.referralDetailsOptional(caller, r.GetName()):
		out = append(out, wrongf("%s withholds the details from a party that may see them", r.GetName()))
	}
	return out
}

// perDataset makes one attempt per dataset.
func (w *isoWorld) perDataset(want func(c, name string) verdict, call func(c as, name string) (any, error),
	check func(c, name string, resp any) []finding, apply func(c, name string, resp any)) []mxAttempt {
	var out []mxAttempt
	for _, name := range w.datasetNames() {
		d := w.m.datasets[name]
		a := mxAttempt{
			label: fmt.Sprintf("%s (owner %s, audience %v)", name, agencyID(d.owner), d.audience), owners: []string{d.owner},
			name: name, twin: twinOf(name), want: func(c string) verdict { return want(c, name) }, call: call,
		}
		if check != nil {
			a.check = func(c string, resp any) []finding { return check(c, name, resp) }
		}
		if apply != nil {
			a.apply = func(c string, resp any) { apply(c, name, resp) }
		}
		out = append(out, a)
	}
	return out
}

// perPlan makes one attempt per plan.
func (w *isoWorld) perPlan(want func(c, name string) verdict, call func(c as, name string) (any, error),
	check func(c, name string, resp any) []finding, apply func(c, name string, resp any)) []mxAttempt {
	var out []mxAttempt
	for _, name := range w.planNames() {
		p := w.m.plans[name]
		a := mxAttempt{
			label: fmt.Sprintf("%s (v%d, %v)", name, len(p.versions), p.current().audience), owners: []string{p.owner},
			name: name, twin: twinOf(name), want: func(c string) verdict { return want(c, name) }, call: call,
		}
		if check != nil {
			a.check = func(c string, resp any) []finding { return check(c, name, resp) }
		}
		if apply != nil {
			a.apply = func(c string, resp any) { apply(c, name, resp) }
		}
		out = append(out, a)
	}
	return out
}

// once is a single attempt about no one resource.
func once(label string, want func(c string) verdict, call func(c as) (any, error), check func(c string, resp any) []finding) []mxAttempt {
	return []mxAttempt{{label: label, want: want, call: func(c as, _ string) (any, error) { return call(c) }, check: check}}
}

func allow(string) verdict { return vAllow }

// callerOf names the caller of a connection.
func callerOf(c as) string {
	if c.agencyID == "" {
		return modelSecretariat
	}
	return "agencies/" + c.agencyID
}

// otherAgency is an active agency other than the caller (and not avoid).
func otherAgency(caller, avoid string) string {
	for _, a := range isoActive {
		if a != caller && a != avoid {
			return a
		}
	}
	return ""
}

// readStream reads a server stream to its end.
func readStream[T any](recv func() (T, error)) ([]T, error) {
	var out []T
	for {
		msg, err := recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, msg)
	}
}

// firstAnswer sends the first request of a bidi stream and returns the
// first answer, or the status the stream ended with. A server that refuses
// the caller at the door ends the stream without reading it; when that
// happens before the request goes out, grpc-go's Send returns io.EOF and
// the stream's real status comes only from Recv (see grpc.ClientStream's
// SendMsg). So an io.EOF from Send is not the answer: Recv is.
func firstAnswer[Req, Resp any](s grpc.BidiStreamingClient[Req, Resp], req *Req) (*Resp, error) {
	if err := s.Send(req); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	resp, err := s.Recv()
	if errors.Is(err, io.EOF) {
		// Status OK and no answer: neither what an admitted caller
		// should get nor a refusal.
		return nil, errors.New("the stream ended with status OK and no answer")
	}
	return resp, err
}

// replayWatch opens a watch from the first revision and reads it until it
// has caught up with now.
func replayWatch(c as, kind, dataset string) ([]isoWatchMsg, error) {
	wt := openWatch(c, callerOf(c), kind, dataset, 1)
	defer wt.cancel()
	first, err := wt.first()
	if err != nil {
		return nil, err
	}
	msgs := []isoWatchMsg{first}
	var rest []isoWatchMsg
	if !first.heartbeat {
		// Nothing changes while the matrix reads: the first heartbeat
		// comes once everything is sent.
		rest, err = drainToHeartbeat(wt)
	}
	return append(msgs, rest...), err
}

// realOf returns the resource a name or its twin stands for.
func realOf(name string, names []string) string {
	for _, n := range names {
		if n == name || twinOf(n) == name {
			return n
		}
	}
	return name
}

// drainToHeartbeat reads a referral or plan watch until its first
// heartbeat (sent once it has nothing more to send).
func drainToHeartbeat(wt *isoWatch) ([]isoWatchMsg, error) {
	var got []isoWatchMsg
	deadline := time.After(20 * time.Second)
	for {
		select {
		case msg, ok := <-wt.msgs:
			if !ok || msg.err != nil {
				return got, fmt.Errorf("%s ended: %v", wt, msg.err)
			}
			got = append(got, msg)
			if msg.heartbeat {
				return got, nil
			}
		case <-deadline:
			return got, fmt.Errorf("%s sent no heartbeat within 20s", wt)
		}
	}
}

func (w *isoWorld) matrixEntries() []mxEntry {
	var entries []mxEntry
	entries = append(entries, w.auditEntries()...)
	entries = append(entries, w.directoryEntries()...)
	entries = append(entries, w.certificateEntries()...)
	entries = append(entries, w.referralEntries()...)
	entries = append(entries, w.datasetEntries()...)
	entries = append(entries, w.planEntries()...)
	entries = append(entries, w.operationsEntries()...)
	entries = append(entries, w.consultantEntries()...)
	entries = append(entries, w.documentEntries()...)
	entries = append(entries, w.reportEntries()...)
	return entries
}

// ---- directory ----

func (w *isoWorld) directoryEntries() []mxEntry {
	m := func() *model { return w.m }
	agencyBody := func(name string) *exchangev1.Agency {
		return &exchangev1.Agency{Name: name, DisplayName: "Renamed " + agencyID(name), Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY}
	}
	return []mxEntry{
		{exchangev1.DirectoryService_GetAgency_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range append(w.agencyNames(), "agencies/zz-missing") {
				out = append(out, mxAttempt{label: name, name: name, want: func(string) verdict {
					if _, ok := m().suspended[name]; ok {
						return vAllow
					}
					return vInvisible
				}, call: func(c as, n string) (any, error) {
					return c.dir.GetAgency(bg(), &exchangev1.GetAgencyRequest{Name: n})
				}})
			}
			return out
		}},
		{exchangev1.DirectoryService_ListAgencies_FullMethodName, func() []mxAttempt {
			return once("all", allow, func(c as) (any, error) {
				return listAll(func(tok string) ([]*exchangev1.Agency, string, error) {
					r, err := c.dir.ListAgencies(bg(), &exchangev1.ListAgenciesRequest{PageSize: 1000, PageToken: tok})
					return r.GetAgencies(), r.GetNextPageToken(), err
				})
			}, func(_ string, resp any) []finding {
				var names []string
				for _, a := range resp.([]*exchangev1.Agency) {
					names = append(names, a.GetName())
				}
				if d := diffSets(names, w.agencyNames()); d != "" {
					return []finding{wrongf("%s", d)}
				}
				return nil
			})
		}},
		{exchangev1.DirectoryService_CreateAgency_FullMethodName, func() []mxAttempt {
			return []mxAttempt{{label: "agencies/made-by-matrix", want: allow, call: func(c as, _ string) (any, error) {
				return c.dir.CreateAgency(bg(), &exchangev1.CreateAgencyRequest{AgencyId: "made-by-matrix", Agency: &exchangev1.Agency{
					DisplayName: "Made by the matrix", Kind: exchangev1.AgencyKind_AGENCY_KIND_NATIONAL_NGO}})
			}, apply: func(string, any) { w.m.suspended["agencies/made-by-matrix"] = false }}}
		}},
		{exchangev1.DirectoryService_UpdateAgency_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range append(w.agencyNames(), "agencies/zz-missing") {
				out = append(out, mxAttempt{label: name, owners: []string{name}, name: name,
					want: func(c string) verdict { return m().updateAgency(c, name) },
					call: func(c as, n string) (any, error) {
						return c.dir.UpdateAgency(bg(), &exchangev1.UpdateAgencyRequest{Agency: agencyBody(n), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}})
					}})
			}
			return out
		}},
		{exchangev1.DirectoryService_SuspendAgency_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range []string{isoSpare, isoSuspended, "agencies/zz-missing"} {
				out = append(out, mxAttempt{label: name, name: name, want: func(string) verdict { return m().agencyState(name, true) },
					call: func(c as, n string) (any, error) {
						return c.dir.SuspendAgency(bg(), &exchangev1.SuspendAgencyRequest{Name: n, Reason: "matrix"})
					}, apply: func(string, any) { w.m.suspended[name] = true }})
			}
			return out
		}},
		{exchangev1.DirectoryService_ReactivateAgency_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range []string{isoSpare, "agencies/ilo", "agencies/zz-missing"} {
				out = append(out, mxAttempt{label: name, name: name, want: func(string) verdict { return m().agencyState(name, false) },
					call: func(c as, n string) (any, error) {
						return c.dir.ReactivateAgency(bg(), &exchangev1.ReactivateAgencyRequest{Name: n})
					}, apply: func(string, any) { w.m.suspended[name] = false }})
			}
			return out
		}},
		{exchangev1.DirectoryService_SetAgencyEncryptionKey_FullMethodName, func() []mxAttempt {
			key := newRecipient(w.t).String()
			var out []mxAttempt
			for _, name := range append(w.agencyNames(), "agencies/zz-missing") {
				out = append(out, mxAttempt{label: name, owners: []string{name}, name: name,
					want: func(c string) verdict { return m().setEncryptionKey(c, name) },
					call: func(c as, n string) (any, error) {
						return c.dir.SetAgencyEncryptionKey(bg(), &exchangev1.SetAgencyEncryptionKeyRequest{Name: n, Recipient: key})
					},
					check: func(_ string, resp any) []finding {
						a := resp.(*exchangev1.SetAgencyEncryptionKeyResponse).GetAgency()
						if a.GetName() != name || a.GetEncryptionKey().GetRecipient() != key {
							return []finding{wrongf("answered %s with key %s", a.GetName(), a.GetEncryptionKey().GetFingerprint())}
						}
						return nil
					}})
			}
			return out
		}},
		{exchangev1.DirectoryService_GetFocalPoint_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range append(w.fpNames(), twinOf(w.fpNames()[0])) {
				out = append(out, mxAttempt{label: name, name: name, want: func(string) verdict {
					if m().focalPoints[name] == "" {
						return vInvisible
					}
					return vAllow
				}, call: func(c as, n string) (any, error) {
					return c.dir.GetFocalPoint(bg(), &exchangev1.GetFocalPointRequest{Name: n})
				}})
			}
			return out
		}},
		{exchangev1.DirectoryService_ListFocalPoints_FullMethodName, func() []mxAttempt {
			return once("agencies/-", allow, func(c as) (any, error) {
				return listAll(func(tok string) ([]*exchangev1.FocalPoint, string, error) {
					r, err := c.dir.ListFocalPoints(bg(), &exchangev1.ListFocalPointsRequest{Parent: "agencies/-", PageSize: 1000, PageToken: tok})
					return r.GetFocalPoints(), r.GetNextPageToken(), err
				})
			}, func(_ string, resp any) []finding {
				var names []string
				for _, fp := range resp.([]*exchangev1.FocalPoint) {
					names = append(names, fp.GetName())
				}
				if d := diffSets(names, w.fpNames()); d != "" {
					return []finding{wrongf("%s", d)}
				}
				return nil
			})
		}},
		{exchangev1.DirectoryService_CreateFocalPoint_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, agency := range w.agencyNames() {
				out = append(out, mxAttempt{label: "under " + agency, owners: []string{agency},
					want: func(c string) verdict { return m().editFocalPoints(c, agency, "") },
					call: func(c as, _ string) (any, error) {
						return c.dir.CreateFocalPoint(bg(), isoFocalPointRequest(agency, w.next()))
					}, apply: func(_ string, resp any) {
						w.m.focalPoints[resp.(*exchangev1.CreateFocalPointResponse).GetFocalPoint().GetName()] = agency
					}})
			}
			return out
		}},
		{exchangev1.DirectoryService_UpdateFocalPoint_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range w.fpNames() {
				agency := w.m.focalPoints[name]
				out = append(out, mxAttempt{label: name, owners: []string{agency}, name: name,
					want: func(c string) verdict { return m().editFocalPoints(c, agency, name) },
					call: func(c as, n string) (any, error) {
						return c.dir.UpdateFocalPoint(bg(), &exchangev1.UpdateFocalPointRequest{FocalPoint: &exchangev1.FocalPoint{
							Name: n, DisplayName: "Officer", Topic: "data", Role: "Updated role", Tenure: &exchangev1.DatePeriod{Start: date(2024, 1, 1)},
						}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"role"}}})
					}})
			}
			return out
		}},
		{exchangev1.DirectoryService_DeleteFocalPoint_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range w.deletableFPs {
				agency := w.m.focalPoints[name]
				out = append(out, mxAttempt{label: name, owners: []string{agency}, name: name,
					want: func(c string) verdict { return m().editFocalPoints(c, agency, name) },
					call: func(c as, n string) (any, error) {
						return c.dir.DeleteFocalPoint(bg(), &exchangev1.DeleteFocalPointRequest{Name: n})
					}, apply: func(string, any) { delete(w.m.focalPoints, name) }})
			}
			return out
		}},
		{exchangev1.DirectoryService_GetWorkingGroup_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range append(w.groupNames(), "workingGroups/zz-missing") {
				out = append(out, mxAttempt{label: name, name: name, want: func(string) verdict {
					if _, ok := m().groups[name]; ok {
						return vAllow
					}
					return vInvisible
				}, call: func(c as, n string) (any, error) {
					return c.dir.GetWorkingGroup(bg(), &exchangev1.GetWorkingGroupRequest{Name: n})
				}})
			}
			return out
		}},
		{exchangev1.DirectoryService_ListWorkingGroups_FullMethodName, func() []mxAttempt {
			return once("all", allow, func(c as) (any, error) {
				return listAll(func(tok string) ([]*exchangev1.WorkingGroup, string, error) {
					r, err := c.dir.ListWorkingGroups(bg(), &exchangev1.ListWorkingGroupsRequest{PageSize: 1000, PageToken: tok})
					return r.GetWorkingGroups(), r.GetNextPageToken(), err
				})
			}, func(_ string, resp any) []finding {
				var names []string
				for _, g := range resp.([]*exchangev1.WorkingGroup) {
					names = append(names, g.GetName())
				}
				if d := diffSets(names, w.groupNames()); d != "" {
					return []finding{wrongf("%s", d)}
				}
				return nil
			})
		}},
		{exchangev1.DirectoryService_CreateWorkingGroup_FullMethodName, func() []mxAttempt {
			return []mxAttempt{{label: "workingGroups/matrix-wg", want: allow, call: func(c as, _ string) (any, error) {
				return c.dir.CreateWorkingGroup(bg(), &exchangev1.CreateWorkingGroupRequest{WorkingGroupId: "matrix-wg", WorkingGroup: &exchangev1.WorkingGroup{
					DisplayName: "Matrix group", Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_TASK_FORCE}})
			}, apply: func(string, any) { w.m.groups["workingGroups/matrix-wg"] = map[string]exchangev1.MembershipRole{} }}}
		}},
		{exchangev1.DirectoryService_UpdateWorkingGroup_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range append(w.groupNames(), "workingGroups/zz-missing") {
				out = append(out, mxAttempt{label: name, name: name, want: func(c string) verdict { return m().updateGroup(c, name) },
					call: func(c as, n string) (any, error) {
						return c.dir.UpdateWorkingGroup(bg(), &exchangev1.UpdateWorkingGroupRequest{WorkingGroup: &exchangev1.WorkingGroup{
							Name: n, DisplayName: "Renamed group", Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP,
						}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}})
					}})
			}
			return out
		}},
		{exchangev1.DirectoryService_DeleteWorkingGroup_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range []string{"workingGroups/matrix-wg", "workingGroups/zz-missing"} {
				out = append(out, mxAttempt{label: name, name: name, want: func(string) verdict {
					if _, ok := m().groups[name]; ok {
						return vAllow
					}
					return vInvisible
				}, call: func(c as, n string) (any, error) {
					return c.dir.DeleteWorkingGroup(bg(), &exchangev1.DeleteWorkingGroupRequest{Name: n})
				}, apply: func(string, any) { delete(w.m.groups, name) }})
			}
			return out
		}},
		{exchangev1.DirectoryService_GetLocation_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for name, v := range map[string]verdict{"locations/KH-12": vAllow, "locations/KH-99": vInvisible} {
				out = append(out, mxAttempt{label: name, want: func(string) verdict { return v }, call: func(c as, _ string) (any, error) {
					return c.dir.GetLocation(bg(), &exchangev1.GetLocationRequest{Name: name})
				}})
			}
			return out
		}},
		{exchangev1.DirectoryService_ListLocations_FullMethodName, func() []mxAttempt {
			return once("KH", allow, func(c as) (any, error) {
				return c.dir.ListLocations(bg(), &exchangev1.ListLocationsRequest{Country: "KH"})
			}, nil)
		}},
	}
}

// ---- certificates ----

func (w *isoWorld) certificateEntries() []mxEntry {
	m := func() *model { return w.m }
	return []mxEntry{
		{exchangev1.CertificateService_IssueCertificate_FullMethodName, func() []mxAttempt {
			return []mxAttempt{{label: "for agencies/iom", owners: []string{"agencies/iom"}, want: allow, call: func(c as, _ string) (any, error) {
				return c.certs.IssueCertificate(bg(), &exchangev1.IssueCertificateRequest{Subject: "agencies/iom", CsrDer: newCSR(w.t, pkiAgency("agencies/iom"))})
			}, check: func(_ string, resp any) []finding {
				if s := resp.(*exchangev1.IssueCertificateResponse).GetCertificate().GetSubject(); s != "agencies/iom" {
					return []finding{wrongf("issued for %s", s)}
				}
				return nil
			}, apply: func(_ string, resp any) {
				name := resp.(*exchangev1.IssueCertificateResponse).GetCertificate().GetName()
				w.m.certs[name] = &mCert{name: name, subject: "agencies/iom"}
			}}}
		}},
		{exchangev1.CertificateService_GetCertificate_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range w.certNames() {
				out = append(out, mxAttempt{label: name + " of " + w.m.certs[name].subject, owners: []string{w.m.certs[name].subject},
					name: name, twin: twinOf(name), want: func(c string) verdict { return m().getCert(c, name) },
					call: func(c as, n string) (any, error) {
						return c.certs.GetCertificate(bg(), &exchangev1.GetCertificateRequest{Name: n})
					}})
			}
			return out
		}},
		{exchangev1.CertificateService_ListCertificates_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, subject := range append([]string{""}, isoActive...) {
				out = append(out, mxAttempt{label: "subject " + subject, want: allow, call: func(c as, _ string) (any, error) {
					return listAll(func(tok string) ([]*exchangev1.Certificate, string, error) {
						r, err := c.certs.ListCertificates(bg(), &exchangev1.ListCertificatesRequest{Subject: subject, PageSize: 1000, PageToken: tok})
						return r.GetCertificates(), r.GetNextPageToken(), err
					})
				}, check: func(caller string, resp any) []finding {
					var names []string
					for _, cert := range resp.([]*exchangev1.Certificate) {
						names = append(names, cert.GetName())
					}
					if d := diffSets(names, m().certsOf(caller, subject)); d != "" {
						return []finding{leakf("%s", d)}
					}
					return nil
				}})
			}
			return out
		}},
		{exchangev1.CertificateService_RevokeCertificate_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range w.spareCerts {
				out = append(out, mxAttempt{label: name + " of " + w.m.certs[name].subject, owners: []string{w.m.certs[name].subject},
					name: name, twin: twinOf(name), want: func(c string) verdict { return m().revokeCert(c, name) },
					call: func(c as, n string) (any, error) {
						return c.certs.RevokeCertificate(bg(), &exchangev1.RevokeCertificateRequest{Name: n, Reason: "matrix"})
					}, apply: func(string, any) { w.m.certs[name].revoked = true }})
			}
			return out
		}},
	}
}

// ---- referrals ----

func (w *isoWorld) referralEntries() []mxEntry {
	m := func() *model { return w.m }
	move := func(v referralVerb) func(c, name string) verdict {
		return func(c, name string) verdict { return m().referralMove(c, name, v) }
	}
	moved := func(to exchangev1.ReferralState) func(c, name string, resp any) {
		return func(_, name string, _ any) { w.m.referrals[name].state = to }
	}
	// half lets the allowed side act on every other referral only, so
	// that the next verbs still find referrals in each state.
	half := func(parity int) func(i int, c, name string) bool {
		return func(i int, c, name string) bool {
			return m().referralParty(c, m().referrals[name]) && i%2 != parity
		}
	}
	return []mxEntry{
		{exchangev1.ReferralService_GetReferral_FullMethodName, func() []mxAttempt {
			return w.perReferral("", func(c, n string) verdict { return m().getReferral(c, n) }, func(c as, n string) (any, error) {
				return c.referrals().GetReferral(bg(), &exchangev1.GetReferralRequest{Name: n})
			}, nil, nil)
		}},
		{exchangev1.ReferralService_ListReferrals_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, dir := range []exchangev1.ReferralDirection{0, exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX, exchangev1.ReferralDirection_REFERRAL_DIRECTION_OUTBOX} {
				out = append(out, mxAttempt{label: dir.String(), want: allow, call: func(c as, _ string) (any, error) {
					return listAll(func(tok string) ([]*exchangev1.Referral, string, error) {
						r, err := c.referrals().ListReferrals(bg(), &exchangev1.ListReferralsRequest{Direction: dir, PageSize: 1000, PageToken: tok})
						return r.GetReferrals(), r.GetNextPageToken(), err
					})
				}, check: func(caller string, resp any) []finding {
					var names []string
					var out []finding
					for _, r := range resp.([]*exchangev1.Referral) {
						names = append(names, r.GetName())
						if r.GetSubject() != nil || r.GetSealedDetails() != nil {
							out = append(out, leakf("identifying details in the summary of %s", r.GetName()))
						}
					}
					var want []string
					for _, n := range m().referralsOf(caller) {
						r := m().referrals[n]
						if dir == 0 || (dir == exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX) == (r.receiver == caller) {
							want = append(want, n)
						}
					}
					if d := diffSets(names, want); d != "" {
						out = append(out, leakf("%s", d))
					}
					return out
				}})
			}
			return out
		}},
		{exchangev1.ReferralService_GetReferralStatistics_FullMethodName, func() []mxAttempt {
			return once("", allow, func(c as) (any, error) {
				return c.referrals().GetReferralStatistics(bg(), &exchangev1.GetReferralStatisticsRequest{})
			}, func(caller string, resp any) []finding {
				var n int64
				for _, k := range resp.(*exchangev1.GetReferralStatisticsResponse).GetCounts() {
					n += k.GetCount()
				}
				if n != int64(m().referralCount(caller)) {
					return []finding{leakf("counts add up to %d, model %d", n, m().referralCount(caller))}
				}
				return nil
			})
		}},
		{exchangev1.ReferralService_SuggestRecipients_FullMethodName, func() []mxAttempt {
			return once("counselling in KH-12", allow, func(c as) (any, error) {
				return c.referrals().SuggestRecipients(bg(), &exchangev1.SuggestRecipientsRequest{Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Subdivision: "KH-12"})
			}, func(_ string, resp any) []finding {
				var out []finding
				for _, a := range resp.(*exchangev1.SuggestRecipientsResponse).GetAgencies() {
					if m().suspended[a.GetName()] {
						out = append(out, wrongf("suggests %s, which is suspended", a.GetName()))
					}
				}
				return out
			})
		}},
		{exchangev1.ReferralService_WatchReferrals_FullMethodName, func() []mxAttempt {
			return once("replay from revision 1", allow, func(c as) (any, error) {
				return replayWatch(c, "referrals", "")
			}, func(caller string, resp any) []finding {
				var out []finding
				for _, l := range w.watchLeaks(&isoWatch{caller: caller, kind: "referrals"}, resp.([]isoWatchMsg), true) {
					out = append(out, leakf("%s", l))
				}
				return out
			})
		}},
		{exchangev1.ReferralService_AcknowledgeReferral_FullMethodName, func() []mxAttempt {
			return w.perReferral("", move(verbAcknowledge), func(c as, n string) (any, error) {
				return c.referrals().AcknowledgeReferral(bg(), &exchangev1.AcknowledgeReferralRequest{Name: n})
			}, moved(rsReceived), nil)
		}},
		{exchangev1.ReferralService_ForwardReferral_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			// To another active agency, then to the suspended one.
			for _, toSuspended := range []bool{false, true} {
				to := func(c as) string {
					if toSuspended {
						return isoSuspended
					}
					return otherAgency(callerOf(c), "agencies/moh-kh")
				}
				out = append(out, w.perReferral(fmt.Sprint("to suspended ", toSuspended), func(c, n string) verdict {
					if toSuspended {
						return m().forward(c, n, isoSuspended)
					}
					return m().forward(c, n, otherAgency(c, "agencies/moh-kh"))
				}, func(c as, n string) (any, error) {
					return c.referrals().ForwardReferral(bg(), isoForward(n, to(c)))
				}, func(c, n string, resp any) {
					child := resp.(*exchangev1.ForwardReferralResponse).GetReferral()
					w.m.addReferral(child.GetName(), c, child.GetReceiver(), n)
				}, nil)...)
			}
			return out
		}},
		{exchangev1.ReferralService_RejectReferral_FullMethodName, func() []mxAttempt {
			return w.perReferral("", move(verbReject), func(c as, n string) (any, error) {
				return c.referrals().RejectReferral(bg(), &exchangev1.RejectReferralRequest{Name: n, Rejection: &exchangev1.Rejection{Reason: exchangev1.RejectionReason_REJECTION_REASON_NO_CAPACITY}})
			}, moved(rsRejected), half(0))
		}},
		{exchangev1.ReferralService_AcceptReferral_FullMethodName, func() []mxAttempt {
			return w.perReferral("", move(verbAccept), func(c as, n string) (any, error) {
				return c.referrals().AcceptReferral(bg(), &exchangev1.AcceptReferralRequest{Name: n})
			}, moved(rsAccepted), nil)
		}},
		{exchangev1.ReferralService_StartReferral_FullMethodName, func() []mxAttempt {
			return w.perReferral("", move(verbStart), func(c as, n string) (any, error) {
				return c.referrals().StartReferral(bg(), &exchangev1.StartReferralRequest{Name: n})
			}, moved(rsInProgress), nil)
		}},
		{exchangev1.ReferralService_CompleteReferral_FullMethodName, func() []mxAttempt {
			return w.perReferral("", move(verbComplete), func(c as, n string) (any, error) {
				return c.referrals().CompleteReferral(bg(), &exchangev1.CompleteReferralRequest{Name: n, Outcome: &exchangev1.Outcome{Successful: true, Reason: "service delivered"}})
			}, moved(rsCompleted), half(1))
		}},
		{exchangev1.ReferralService_RevokeReferralConsent_FullMethodName, func() []mxAttempt {
			return w.perReferral("", func(c, n string) verdict { return m().revokeConsent(c, n) }, func(c as, n string) (any, error) {
				return c.referrals().RevokeReferralConsent(bg(), &exchangev1.RevokeReferralConsentRequest{Name: n, Reason: "withdrawn"})
			}, func(_, n string, _ any) { w.m.revoke(n) }, half(0))
		}},
		{exchangev1.ReferralService_CancelReferral_FullMethodName, func() []mxAttempt {
			return w.perReferral("", move(verbCancel), func(c as, n string) (any, error) {
				return c.referrals().CancelReferral(bg(), &exchangev1.CancelReferralRequest{Name: n, Reason: "no longer needed"})
			}, moved(rsCancelled), half(1))
		}},
		{exchangev1.ReferralService_EraseReferralDetails_FullMethodName, func() []mxAttempt {
			return w.perReferral("", func(c, n string) verdict { return m().eraseDetails(c, n) }, func(c as, n string) (any, error) {
				return c.referrals().EraseReferralDetails(bg(), &exchangev1.EraseReferralDetailsRequest{Name: n, Reason: "erasure requested by the person", ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST})
			}, func(_, n string, _ any) { w.m.referrals[n].erased = true }, func(i int, c, n string) bool {
				return half(0)(i, c, n) || i > 4
			})
		}},
		{exchangev1.ReferralService_CreateReferral_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, toSuspended := range []bool{false, true} {
				receiver := func(caller string) string {
					if toSuspended {
						return isoSuspended
					}
					return otherAgency(caller, "")
				}
				out = append(out, mxAttempt{label: fmt.Sprint("to suspended ", toSuspended), want: func(c string) verdict {
					return m().createReferral(receiver(c))
				}, call: func(c as, _ string) (any, error) {
					return c.referrals().CreateReferral(bg(), &exchangev1.CreateReferralRequest{Referral: isoReferral(receiver(callerOf(c))), RequestId: nextRequestID()})
				}, check: func(caller string, resp any) []finding {
					return referralFindings(w.m, caller, resp.(*exchangev1.CreateReferralResponse).GetReferral(), false)
				}, apply: func(caller string, resp any) {
					r := resp.(*exchangev1.CreateReferralResponse).GetReferral()
					w.m.addReferral(r.GetName(), caller, r.GetReceiver(), "")
				}})
			}
			return out
		}},
		{exchangev1.ReferralService_BatchCreateReferrals_FullMethodName, func() []mxAttempt {
			return []mxAttempt{{label: "one to another agency, one to the suspended one", want: allow, call: func(c as, _ string) (any, error) {
				return c.referrals().BatchCreateReferrals(bg(), &exchangev1.BatchCreateReferralsRequest{Requests: []*exchangev1.CreateReferralRequest{
					{Referral: isoReferral(otherAgency(callerOf(c), "")), RequestId: nextRequestID()},
					{Referral: isoReferral(isoSuspended), RequestId: nextRequestID()},
				}})
			}, check: func(caller string, resp any) []finding {
				res := resp.(*exchangev1.BatchCreateReferralsResponse).GetResults()
				var out []finding
				if len(res) != 2 || res[0].GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED {
					out = append(out, wrongf("first result %v", res))
				}
				if len(res) == 2 && (res[1].GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED || res[1].GetCode() != "FAILED_PRECONDITION") {
					out = append(out, wrongf("a referral to a suspended agency: %v", res[1]))
				}
				return out
			}, apply: func(caller string, resp any) {
				res := resp.(*exchangev1.BatchCreateReferralsResponse).GetResults()
				if len(res) > 0 && res[0].GetReferral() != "" {
					w.m.addReferral(res[0].GetReferral(), caller, otherAgency(caller, ""), "")
				}
			}}}
		}},
	}
}

// ---- datasets ----

func (w *isoWorld) datasetEntries() []mxEntry {
	m := func() *model { return w.m }
	read := func(c, n string) verdict { return m().datasetRead(c, n) }
	own := func(c, n string) verdict { return m().datasetOwn(c, n) }
	return []mxEntry{
		{exchangev1.DatasetService_GetDataset_FullMethodName, func() []mxAttempt {
			return w.perDataset(read, func(c as, n string) (any, error) {
				return c.datasets().GetDataset(bg(), &exchangev1.GetDatasetRequest{Name: n})
			}, func(_, n string, resp any) []finding {
				if o := resp.(*exchangev1.GetDatasetResponse).GetDataset().GetOwner(); o != m().datasets[n].owner {
					return []finding{wrongf("owner %s", o)}
				}
				return nil
			}, nil)
		}},
		{exchangev1.DatasetService_ListDatasets_FullMethodName, func() []mxAttempt {
			return once("", allow, func(c as) (any, error) {
				return listAll(func(tok string) ([]*exchangev1.Dataset, string, error) {
					r, err := c.datasets().ListDatasets(bg(), &exchangev1.ListDatasetsRequest{PageSize: 1000, PageToken: tok})
					return r.GetDatasets(), r.GetNextPageToken(), err
				})
			}, func(caller string, resp any) []finding {
				var names []string
				for _, d := range resp.([]*exchangev1.Dataset) {
					names = append(names, d.GetName())
				}
				if d := diffSets(names, m().datasetsOf(caller)); d != "" {
					return []finding{leakf("%s", d)}
				}
				return nil
			})
		}},
		{exchangev1.DatasetService_PullDatasetRows_FullMethodName, func() []mxAttempt {
			return w.perDataset(read, func(c as, n string) (any, error) {
				s, err := c.datasets().PullDatasetRows(bg(), &exchangev1.PullDatasetRowsRequest{Dataset: n})
				if err != nil {
					return nil, err
				}
				msgs, err := readStream(s.Recv)
				var rows []*exchangev1.Row
				for _, msg := range msgs {
					rows = append(rows, msg.GetRows()...)
				}
				return rows, err
			}, func(_, n string, resp any) []finding {
				rows := resp.([]*exchangev1.Row)
				var out []finding
				if len(rows) != len(m().datasets[n].writers) {
					out = append(out, wrongf("%d rows, model %d", len(rows), len(m().datasets[n].writers)))
				}
				for _, r := range rows {
					if !m().datasets[n].writers[r.GetContributor()+"|"+r.GetLocation()] {
						out = append(out, leakf("a row of %s in %s the model does not know", r.GetContributor(), r.GetLocation()))
					}
				}
				return out
			}, nil)
		}},
		{exchangev1.DatasetService_AggregateDatasetRows_FullMethodName, func() []mxAttempt {
			return w.perDataset(func(c, n string) verdict {
				v, _ := m().datasetAggregate(c, n)
				return v
			}, func(c as, n string) (any, error) {
				return c.datasets().AggregateDatasetRows(bg(), &exchangev1.AggregateDatasetRowsRequest{Dataset: n, GroupBy: []string{"location", "contributor"}})
			}, func(c, n string, resp any) []finding {
				_, public := m().datasetAggregate(c, n)
				if !public {
					return nil
				}
				agg := resp.(*exchangev1.AggregateDatasetRowsResponse)
				k := m().datasets[n].threshold
				if k == 0 {
					k = 5
				}
				var out []finding
				if agg.GetRoundingBase() < max(k, 5) {
					out = append(out, leakf("public view rounded to base %d, the dataset's threshold is %d", agg.GetRoundingBase(), k))
				}
				for _, cell := range agg.GetCells() {
					for measure, sum := range cell.GetSums() {
						if sum > 0 && sum < float64(k) {
							out = append(out, leakf("public view shows %s = %v in %v, below %d", measure, sum, cell.GetGroup(), k))
						}
					}
				}
				return out
			}, nil)
		}},
		{exchangev1.DatasetService_GetDatasetCompleteness_FullMethodName, func() []mxAttempt {
			return w.perDataset(read, func(c as, n string) (any, error) {
				return c.datasets().GetDatasetCompleteness(bg(), &exchangev1.GetDatasetCompletenessRequest{Dataset: n, Period: "2026-01"})
			}, nil, nil)
		}},
		{exchangev1.DatasetService_WatchDatasetRows_FullMethodName, func() []mxAttempt {
			return w.perDataset(read, func(c as, n string) (any, error) {
				return replayWatch(c, "rows", n)
			}, func(c, n string, resp any) []finding {
				var out []finding
				for _, msg := range resp.([]isoWatchMsg) {
					for _, r := range msg.rows {
						if !m().datasets[n].writers[r.GetContributor()+"|"+r.GetLocation()] {
							out = append(out, leakf("a row of %s in %s the model does not know", r.GetContributor(), r.GetLocation()))
						}
					}
				}
				return out
			}, nil)
		}},
		{exchangev1.DatasetService_UpdateDataset_FullMethodName, func() []mxAttempt {
			return w.perDataset(own, func(c as, n string) (any, error) {
				req := w.m.datasetUpdate(realOf(n, w.datasetNames()), "description")
				req.Dataset.Name = n
				return c.datasets().UpdateDataset(bg(), req)
			}, nil, nil)
		}},
		{exchangev1.DatasetService_WriteDatasetRows_FullMethodName, func() []mxAttempt {
			return w.perDataset(func(c, n string) verdict { return m().datasetWrite(c, n) }, func(c as, n string) (any, error) {
				row := isoRow("KH-12", 7)
				return c.datasets().WriteDatasetRows(bg(), &exchangev1.WriteDatasetRowsRequest{Dataset: n, Writes: []*exchangev1.RowWrite{{Row: row}}})
			}, func(_, _ string, resp any) []finding {
				if r := resp.(*exchangev1.WriteDatasetRowsResponse); r.GetAccepted() != 1 {
					return []finding{wrongf("accepted %d: %v", r.GetAccepted(), r.GetResults())}
				}
				return nil
			}, func(c, n string, _ any) { w.m.datasets[n].writers[c+"|KH-12"] = true })
		}},
		{exchangev1.DatasetService_LockDatasetPeriod_FullMethodName, func() []mxAttempt {
			return w.perDataset(func(c, n string) verdict {
				if v := own(c, n); v != vAllow || !m().datasets[n].locked["2026-03"] {
					return v
				}
				return vPrecondition
			}, func(c as, n string) (any, error) {
				return c.datasets().LockDatasetPeriod(bg(), &exchangev1.LockDatasetPeriodRequest{Dataset: n, Period: "2026-03"})
			}, nil, func(_, n string, _ any) { w.m.datasets[n].locked["2026-03"] = true })
		}},
		{exchangev1.DatasetService_UnlockDatasetPeriod_FullMethodName, func() []mxAttempt {
			return w.perDataset(func(c, n string) verdict {
				if v := own(c, n); v != vAllow || m().datasets[n].locked["2026-03"] {
					return v
				}
				return vPrecondition
			}, func(c as, n string) (any, error) {
				return c.datasets().UnlockDatasetPeriod(bg(), &exchangev1.UnlockDatasetPeriodRequest{Dataset: n, Period: "2026-03", Reason: "correction"})
			}, nil, func(_, n string, _ any) { delete(w.m.datasets[n].locked, "2026-03") })
		}},
		{exchangev1.DatasetService_CreateDataset_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, ownParent := range []bool{true, false} {
				parent := func(caller string) string {
					if ownParent {
						return caller
					}
					return otherAgency(caller, "")
				}
				out = append(out, mxAttempt{label: fmt.Sprint("a new dataset, own parent ", ownParent), want: func(c string) verdict { return m().ownParent(c, parent(c)) },
					call: func(c as, _ string) (any, error) {
						d := returnsDataset()
						d.Owner = "agencies/ilo" // output only: the caller owns it
						return c.datasets().CreateDataset(bg(), &exchangev1.CreateDatasetRequest{Parent: parent(callerOf(c)), DatasetId: fmt.Sprintf("mx-%d", w.next()), Dataset: d})
					}, check: func(caller string, resp any) []finding {
						d := resp.(*exchangev1.CreateDatasetResponse).GetDataset()
						if o := d.GetOwner(); o != caller {
							return []finding{leakf("stored with owner %s", o)}
						}
						if !strings.HasPrefix(d.GetName(), caller+"/datasets/") {
							return []finding{wrongf("named %s, not under its owner %s", d.GetName(), caller)}
						}
						return nil
					}, apply: func(caller string, resp any) {
						name := resp.(*exchangev1.CreateDatasetResponse).GetDataset().GetName()
						w.m.datasets[name] = &mDataset{name: name, owner: caller, writers: map[string]bool{}, locked: map[string]bool{}}
					}})
			}
			return out
		}},
	}
}

// ---- plans ----

func (w *isoWorld) planEntries() []mxEntry {
	m := func() *model { return w.m }
	get := func(c as, n string, version int32) (any, error) {
		return c.plans().GetPlan(bg(), &exchangev1.GetPlanRequest{Name: n, Version: version})
	}
	// planTwin compares with a missing plan the answers of callers that do
	// not see the plan at all (those that see it are compared with a
	// missing version).
	planTwin := func(name string) func(c string) string {
		return func(c string) string {
			if m().getPlan(c, name, 0) == vInvisible {
				return twinOf(name)
			}
			return ""
		}
	}
	diffVerdict := func(c, n string, from, to int) verdict {
		if v := m().getPlan(c, n, 0); v != vAllow {
			return v
		}
		if to == 0 {
			to = len(m().plans[n].versions)
		}
		if m().getPlan(c, n, from) != vAllow || m().getPlan(c, n, to) != vAllow {
			return vInvisible
		}
		return vAllow
	}
	return []mxEntry{
		{exchangev1.PlanService_GetPlan_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, name := range w.planNames() {
				p := w.m.plans[name]
				out = append(out, mxAttempt{label: fmt.Sprintf("%s (%v)", name, p.current().audience), owners: []string{p.owner}, name: name, twin: twinOf(name),
					want: func(c string) verdict { return m().getPlan(c, name, 0) },
					call: func(c as, n string) (any, error) { return get(c, n, 0) }})
				for v := range p.versions {
					version := v + 1
					label := fmt.Sprintf("%s version %d (%v)", name, version, p.versions[v].audience)
					// Against a missing plan, then against a missing version
					// of this plan.
					out = append(out, mxAttempt{label: label, owners: []string{p.owner}, name: name, twinFor: planTwin(name),
						want: func(c string) verdict { return m().getPlan(c, name, version) },
						call: func(c as, n string) (any, error) { return get(c, n, int32(version)) }})
					out = append(out, mxAttempt{label: label + " vs version 9", owners: []string{p.owner},
						name: fmt.Sprintf("version %d", version), twin: "version 9",
						want: func(c string) verdict { return m().getPlan(c, name, version) },
						call: func(c as, token string) (any, error) { return get(c, name, int32(token[len(token)-1]-'0')) }})
				}
			}
			return out
		}},
		{exchangev1.PlanService_ListPlans_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, parent := range append([]string{"agencies/-"}, append(slices.Clone(isoActive), isoSuspended)...) {
				owner := strings.TrimSuffix(parent, "-")
				if owner == "agencies/" {
					owner = ""
				}
				out = append(out, mxAttempt{label: parent, want: allow, call: func(c as, _ string) (any, error) {
					return listAll(func(tok string) ([]*exchangev1.Plan, string, error) {
						r, err := c.plans().ListPlans(bg(), &exchangev1.ListPlansRequest{Parent: parent, PageSize: 1000, PageToken: tok})
						return r.GetPlans(), r.GetNextPageToken(), err
					})
				}, check: func(caller string, resp any) []finding {
					var names []string
					for _, p := range resp.([]*exchangev1.Plan) {
						names = append(names, p.GetName())
					}
					if d := diffSets(names, m().plansOf(caller, owner)); d != "" {
						return []finding{leakf("%s", d)}
					}
					return nil
				}})
			}
			return out
		}},
		{exchangev1.PlanService_ListPlanVersions_FullMethodName, func() []mxAttempt {
			return w.perPlan(func(c, n string) verdict { return m().getPlan(c, n, 0) }, func(c as, n string) (any, error) {
				return c.plans().ListPlanVersions(bg(), &exchangev1.ListPlanVersionsRequest{Name: n, PageSize: 1000})
			}, func(c, n string, resp any) []finding {
				var got []int32
				for _, p := range resp.(*exchangev1.ListPlanVersionsResponse).GetPlans() {
					got = append(got, p.GetVersion())
				}
				if want := m().planVersionsOf(c, n); !slices.Equal(got, want) {
					return []finding{leakf("versions %v, model %v", got, want)}
				}
				return nil
			}, nil)
		}},
		{exchangev1.PlanService_DiffPlanVersions_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, pair := range [][2]int{{1, 0}, {1, 2}} {
				from, to := pair[0], pair[1]
				for _, a := range w.perPlan(func(c, n string) verdict { return diffVerdict(c, n, from, to) }, func(c as, n string) (any, error) {
					return c.plans().DiffPlanVersions(bg(), &exchangev1.DiffPlanVersionsRequest{Name: n, FromVersion: int32(from), ToVersion: int32(to)})
				}, nil, nil) {
					if to > len(w.m.plans[a.name].versions) {
						continue
					}
					name := a.name
					a.label += fmt.Sprintf(" from %d to %d", from, to)
					a.twin, a.twinFor = "", planTwin(name)
					out = append(out, a)
					// The same against a missing version: from 9 to 9.
					out = append(out, mxAttempt{label: a.label + " vs versions 9 to 9", owners: a.owners, name: fmt.Sprintf("version %d", from), twin: "version 9",
						want: a.want, call: func(c as, token string) (any, error) {
							f, t := int32(from), int32(to)
							if token == "version 9" {
								f, t = 9, 9
							}
							return c.plans().DiffPlanVersions(bg(), &exchangev1.DiffPlanVersionsRequest{Name: name, FromVersion: f, ToVersion: t})
						}})
				}
			}
			return out
		}},
		{exchangev1.PlanService_FindOverlaps_FullMethodName, func() []mxAttempt {
			return once("KH prevention", allow, func(c as) (any, error) {
				return c.plans().FindOverlaps(bg(), &exchangev1.FindOverlapsRequest{Country: "KH", Niche: exchangev1.Niche_NICHE_PREVENTION, PageSize: 1000})
			}, func(caller string, resp any) []finding {
				var got []string
				for _, o := range resp.(*exchangev1.FindOverlapsResponse).GetOverlaps() {
					got = append(got, o.GetFirst().GetName()+"|"+o.GetSecond().GetName())
				}
				if d := diffSets(got, m().overlaps(caller)); d != "" {
					return []finding{leakf("%s", d)}
				}
				return nil
			})
		}},
		{exchangev1.PlanService_FindGaps_FullMethodName, func() []mxAttempt {
			return once("KH prevention 2026", allow, func(c as) (any, error) {
				return c.plans().FindGaps(bg(), &exchangev1.FindGapsRequest{Country: "KH", Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION},
					Period: &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)}})
			}, func(caller string, resp any) []finding {
				gaps := map[string]bool{}
				for _, g := range resp.(*exchangev1.FindGapsResponse).GetGaps() {
					gaps[g.GetSubdivision()] = true
				}
				var out []finding
				for _, sub := range []string{"KH-2", "KH-12"} {
					if covered := m().planCount(caller, sub) > 0; covered == gaps[sub] {
						out = append(out, leakf("%s: gap %v, but the caller sees %d plans there", sub, gaps[sub], m().planCount(caller, sub)))
					}
				}
				return out
			})
		}},
		{exchangev1.PlanService_GetCoverage_FullMethodName, func() []mxAttempt {
			return once("KH prevention", allow, func(c as) (any, error) {
				return c.plans().GetCoverage(bg(), &exchangev1.GetCoverageRequest{Country: "KH", Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}})
			}, func(caller string, resp any) []finding {
				tl := &isoTally{}
				w.checkCoverage(tl, m(), caller, resp.(*exchangev1.GetCoverageResponse))
				var out []finding
				for _, p := range tl.problems {
					out = append(out, leakf("%s", p))
				}
				return out
			})
		}},
		{exchangev1.PlanService_WatchPlans_FullMethodName, func() []mxAttempt {
			return once("replay from revision 1", allow, func(c as) (any, error) {
				return replayWatch(c, "plans", "")
			}, func(caller string, resp any) []finding {
				var out []finding
				for _, l := range w.watchLeaks(&isoWatch{caller: caller, kind: "plans"}, resp.([]isoWatchMsg), true) {
					out = append(out, leakf("%s", l))
				}
				return out
			})
		}},
		{exchangev1.PlanService_CreatePlan_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, ownParent := range []bool{true, false} {
				parent := func(caller string) string {
					if ownParent {
						return caller
					}
					return otherAgency(caller, "")
				}
				out = append(out, mxAttempt{label: fmt.Sprint("own parent ", ownParent), want: func(c string) verdict { return m().ownParent(c, parent(c)) },
					call: func(c as, _ string) (any, error) {
						ext := fmt.Sprintf("mx-%d", w.next())
						body := isoPlan(ext, "KH-12", mAudience{}, "Plan "+ext)
						body.Owner = "agencies/iom" // output only: the caller owns it
						return c.plans().CreatePlan(bg(), &exchangev1.CreatePlanRequest{Parent: parent(callerOf(c)), Plan: body, RequestId: nextRequestID()})
					}, check: func(caller string, resp any) []finding {
						if o := resp.(*exchangev1.CreatePlanResponse).GetPlan().GetOwner(); o != caller {
							return []finding{leakf("stored with owner %s", o)}
						}
						return nil
					}, apply: func(caller string, resp any) {
						p := resp.(*exchangev1.CreatePlanResponse).GetPlan()
						w.m.plans[p.GetName()] = &mPlan{name: p.GetName(), owner: caller, externalID: p.GetExternalId(),
							versions: []mPlanVersion{{subdivision: "KH-12", title: p.GetTitle()}}}
					}})
			}
			return out
		}},
		{exchangev1.PlanService_UpdatePlan_FullMethodName, func() []mxAttempt {
			return w.perPlan(func(c, n string) verdict { return m().changePlan(c, n) }, func(c as, n string) (any, error) {
				real := realOf(n, w.planNames())
				p := w.m.plans[real]
				req := w.m.planUpdate(real, p.current().audience, p.current().title+" (revised)")
				req.Plan.Name = n
				return c.plans().UpdatePlan(bg(), req)
			}, nil, func(_, n string, _ any) {
				p := w.m.plans[n]
				w.m.applyPlanUpdate(n, p.current().audience, p.current().title+" (revised)")
			})
		}},
		{exchangev1.PlanService_ApplyPlans_FullMethodName, func() []mxAttempt {
			var out []mxAttempt
			for _, ownParent := range []bool{true, false} {
				parent := func(caller string) string {
					if ownParent {
						return caller
					}
					return otherAgency(caller, "")
				}
				out = append(out, mxAttempt{label: fmt.Sprint("validate only, own parent ", ownParent), want: func(c string) verdict { return m().ownParent(c, parent(c)) },
					call: func(c as, _ string) (any, error) {
						return c.plans().ApplyPlans(bg(), &exchangev1.ApplyPlansRequest{Parent: parent(callerOf(c)), ValidateOnly: true,
							Plans: []*exchangev1.Plan{isoPlan("applied-1", "KH-12", mAudience{}, "Applied")}})
					}})
			}
			return out
		}},
		{exchangev1.PlanService_ImportIatiActivities_FullMethodName, func() []mxAttempt {
			file, err := os.ReadFile("../iati/testdata/ilo-mekong-2026.xml")
			w.must(err, "read the IATI file")
			var out []mxAttempt
			for _, ownParent := range []bool{true, false} {
				parent := func(caller string) string {
					if ownParent {
						return caller
					}
					return otherAgency(caller, "")
				}
				out = append(out, mxAttempt{label: fmt.Sprint("validate only, own parent ", ownParent), want: func(c string) verdict { return m().ownParent(c, parent(c)) },
					call: func(c as, _ string) (any, error) {
						return c.plans().ImportIatiActivities(bg(), &exchangev1.ImportIatiActivitiesRequest{Parent: parent(callerOf(c)), IatiXml: file, ValidateOnly: true})
					}})
			}
			return out
		}},
		{exchangev1.PlanService_CancelPlan_FullMethodName, func() []mxAttempt {
			return w.perPlan(func(c, n string) verdict { return m().changePlan(c, n) }, func(c as, n string) (any, error) {
				return c.plans().CancelPlan(bg(), &exchangev1.CancelPlanRequest{Name: n, Reason: "matrix"})
			}, nil, func(_, n string, _ any) { w.m.applyPlanCancel(n) })
		}},
	}
}

// ---- operations: admin, health, reflection ----

func (w *isoWorld) operationsEntries() []mxEntry {
	return []mxEntry{
		{exchangev1.AdminService_Backup_FullMethodName, func() []mxAttempt {
			return once("first chunk", allow, func(c as) (any, error) {
				ctx, cancel := context.WithCancel(bg())
				defer cancel()
				s, err := exchangev1.NewAdminServiceClient(c.conn).Backup(ctx, &exchangev1.BackupRequest{})
				if err != nil {
					return nil, err
				}
				return s.Recv()
			}, nil)
		}},
		{exchangev1.AdminService_GetStorageStatus_FullMethodName, func() []mxAttempt {
			return once("", allow, func(c as) (any, error) {
				return exchangev1.NewAdminServiceClient(c.conn).GetStorageStatus(bg(), &exchangev1.GetStorageStatusRequest{})
			}, nil)
		}},
		{grpc_health_v1.Health_Check_FullMethodName, func() []mxAttempt {
			return once("", allow, func(c as) (any, error) {
				return grpc_health_v1.NewHealthClient(c.conn).Check(bg(), &grpc_health_v1.HealthCheckRequest{})
			}, nil)
		}},
		{grpc_health_v1.Health_List_FullMethodName, func() []mxAttempt {
			return once("", allow, func(c as) (any, error) {
				return grpc_health_v1.NewHealthClient(c.conn).List(bg(), &grpc_health_v1.HealthListRequest{})
			}, nil)
		}},
		{grpc_health_v1.Health_Watch_FullMethodName, func() []mxAttempt {
			return once("first status", allow, func(c as) (any, error) {
				ctx, cancel := context.WithCancel(bg())
				defer cancel()
				s, err := grpc_health_v1.NewHealthClient(c.conn).Watch(ctx, &grpc_health_v1.HealthCheckRequest{})
				if err != nil {
					return nil, err
				}
				return s.Recv()
			}, nil)
		}},
		{reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName, func() []mxAttempt {
			return once("list services", allow, func(c as) (any, error) {
				ctx, cancel := context.WithCancel(bg())
				defer cancel()
				s, err := reflectionv1.NewServerReflectionClient(c.conn).ServerReflectionInfo(ctx)
				if err != nil {
					return nil, err
				}
				return firstAnswer(s, &reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}})
			}, nil)
		}},
		{reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName, func() []mxAttempt {
			return once("list services", allow, func(c as) (any, error) {
				ctx, cancel := context.WithCancel(bg())
				defer cancel()
				s, err := reflectionv1alpha.NewServerReflectionClient(c.conn).ServerReflectionInfo(ctx)
				if err != nil {
					return nil, err
				}
				//lint:ignore SA1019 the server still serves the deprecated v1alpha reflection (reflection.Register does), so it is tested
				return firstAnswer(s, &reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{}})
			}, nil)
		}},
	}
}

// ---- audit ----

func (w *isoWorld) auditEntries() []mxEntry {
	return []mxEntry{
		{exchangev1.AuditService_ListAuditEntries_FullMethodName, func() []mxAttempt {
			return once("every page", allow, func(c as) (any, error) {
				return listAll(func(tok string) ([]*exchangev1.AuditEntry, string, error) {
					r, err := exchangev1.NewAuditServiceClient(c.conn).ListAuditEntries(bg(), &exchangev1.ListAuditEntriesRequest{PageSize: 1000, PageToken: tok})
					return r.GetEntries(), r.GetNextPageToken(), err
				})
			}, func(caller string, resp any) []finding {
				return w.auditViewFindings(caller, resp.([]*exchangev1.AuditEntry))
			})
		}},
		{exchangev1.AuditService_WatchAuditEntries_FullMethodName, func() []mxAttempt {
			return once("replay from the start of the chain", allow, func(c as) (any, error) {
				return w.replayAuditWatch(c)
			}, func(caller string, resp any) []finding {
				return w.auditViewFindings(caller, resp.([]*exchangev1.AuditEntry))
			})
		}},
		{exchangev1.AuditService_GetAuditHead_FullMethodName, func() []mxAttempt {
			return once("", allow, func(c as) (any, error) {
				return exchangev1.NewAuditServiceClient(c.conn).GetAuditHead(bg(), &exchangev1.GetAuditHeadRequest{})
			}, nil)
		}},
	}
}

// auditViewFindings compares the entries an audit list or watch showed the
// caller with the model's: exactly those about the caller, and for an
// agency without their place in the chain.
func (w *isoWorld) auditViewFindings(caller string, shown []*exchangev1.AuditEntry) []finding {
	all, err := w.x.store.AuditEntries(bg(), 0, 1<<20)
	if err != nil {
		return []finding{wrongf("reading the chain: %v", err)}
	}
	// Entries are told apart by their hashes: an agency is not
	// shown their sequence numbers, whose gaps would count what
	// other agencies did.
	var got, want []string
	var out []finding
	for _, e := range shown {
		got = append(got, fmt.Sprintf("%x %s %s", e.GetHash()[:6], e.GetActor(), e.GetResourceName()))
		if caller != modelSecretariat && (e.GetSequence() != 0 || len(e.GetPreviousHash()) != 0) {
			out = append(out, leakf("entry %d %s %s shows its place in the chain", e.GetSequence(), e.GetActor(), e.GetResourceName()))
		}
	}
	for _, e := range all {
		if w.m.auditAbout(caller, e) {
			want = append(want, fmt.Sprintf("%x %s %s", e.GetHash()[:6], e.GetActor(), e.GetResourceName()))
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			out = append(out, leakf("entry %s, which is not about the caller", g))
		}
	}
	for _, x := range want {
		if !slices.Contains(got, x) {
			out = append(out, wrongf("entry %s about the caller missing", x))
		}
	}
	if len(out) > 8 {
		out = append(out[:8], wrongf("and %d more", len(out)-8))
	}
	return out
}

// replayAuditWatch watches the audit chain from its start (a token sealed
// like the exchange's own, at position 0) until the watch has passed the
// head as it stood before the call, and returns the entries it sent.
func (w *isoWorld) replayAuditWatch(c as) ([]*exchangev1.AuditEntry, error) {
	tokens := &auditService{store: w.x.store}
	head, _, err := w.x.store.AuditHead(bg())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(bg(), 20*time.Second)
	defer cancel()
	stream, err := exchangev1.NewAuditServiceClient(c.conn).WatchAuditEntries(ctx, &exchangev1.WatchAuditEntriesRequest{ResumeToken: tokens.sealToken(0)})
	if err != nil {
		return nil, err
	}
	var got []*exchangev1.AuditEntry
	for {
		msg, err := stream.Recv()
		if err != nil {
			return got, err
		}
		got = append(got, msg.GetEntries()...)
		pos, ok := tokens.openToken(msg.GetResumeToken())
		if !ok {
			return got, fmt.Errorf("resume token %q does not open", msg.GetResumeToken())
		}
		if pos >= head {
			return got, nil
		}
	}
}

// TestRefusedBidiStreamReportsTheRefusal: a bidi stream refused at the
// door (reflection, as a suspended agency) has ended before the client's
// first Send; the matrix must still see PERMISSION_DENIED, not the io.EOF
// that Send returns. The matrix lost this race now and then (its client
// sent after the refusal) and reported Unknown "EOF"; here it is lost
// every time.
func TestRefusedBidiStreamReportsTheRefusal(t *testing.T) {
	t.Parallel()
	x := startExchange(t)
	sec := x.asSecretariat()
	x.createAgency(sec, "iom")
	iom := x.asAgency("iom")
	if _, err := sec.dir.SuspendAgency(bg(), &exchangev1.SuspendAgencyRequest{Name: "agencies/iom", Reason: "membership lapsed"}); err != nil {
		t.Fatal(err)
	}
	req := &reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}
	ctx, cancel := context.WithTimeout(bg(), 10*time.Second)
	defer cancel()
	s, err := reflectionv1.NewServerReflectionClient(iom.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Send until the server has ended the stream, which Send reports as
	// io.EOF (the refusal does not read the requests sent before it).
	for {
		err := s.Send(req)
		if err == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		if !errors.Is(err, io.EOF) {
			t.Fatalf("Send: %v, want io.EOF once the server has ended the stream", err)
		}
		break
	}
	_, err = firstAnswer(s, req)
	if st := wantCode(t, err, codes.PermissionDenied); reason(st) != "AGENCY_SUSPENDED" {
		t.Errorf("reason %q (%v), want AGENCY_SUSPENDED", reason(st), err)
	}
}
