package fieldfile_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/client/fieldfile"
	"github.com/alltogether/exchange/internal/faultproxy"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Writes to one referral made while the line is down wait in the outbox
// in the order made; a write made once the line is back sends the
// waiting ones first, so the exchange sees the moves in order.
func TestOutboxSendsTheWritesOfAResourceInOrder(t *testing.T) {
	x := startExchange(t)
	ctx := context.Background()
	r, err := x.direct("ilo").Referrals.Create(ctx, newReferral("iom", "Sokha", ""))
	if err != nil {
		t.Fatal(err)
	}
	iom, _ := x.fieldOffice("iom")
	x.proxy.SetMode(faultproxy.Refuse)
	for _, move := range []func() error{
		func() error { _, err := iom.Referrals.Acknowledge(ctx, r.GetName(), ""); return err },
		func() error { _, err := iom.Referrals.Accept(ctx, r.GetName(), ""); return err },
	} {
		if err := move(); !client.IsQueued(err) {
			t.Fatalf("a move with the line down = %v, want it queued", err)
		}
	}
	es := entries(t, iom)
	if len(es) != 2 || es[0].Kind != "acknowledge" || es[1].Kind != "accept" || es[0].Resource != r.GetName() || es[1].State != fieldfile.Pending {
		t.Fatalf("outbox = %+v, want acknowledge then accept of %s, pending", es, r.GetName())
	}

	// Line back: Start must go after the two waiting moves, or the
	// exchange refuses it (the referral is not yet accepted).
	x.proxy.SetMode(faultproxy.Pass)
	waitConnected(t, iom)
	started, err := iom.Referrals.Start(ctx, r.GetName(), "")
	if err != nil {
		t.Fatalf("start once the line is back: %v", err)
	}
	if started.GetState() != exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS {
		t.Fatalf("started = %v", started.GetState())
	}
	if es := entries(t, iom); len(es) != 0 {
		t.Fatalf("outbox after the line came back = %+v, want empty", es)
	}
	got, err := x.direct("iom").Referrals.Get(ctx, r.GetName())
	if err != nil {
		t.Fatal(err)
	}
	var moves []exchangev1.ReferralState
	for _, h := range got.GetHistory() {
		if h.GetFromState() != h.GetToState() {
			moves = append(moves, h.GetToState())
		}
	}
	want := []exchangev1.ReferralState{exchangev1.ReferralState_REFERRAL_STATE_REQUESTED, exchangev1.ReferralState_REFERRAL_STATE_RECEIVED,
		exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED, exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS}
	if len(moves) < 3 || !equalTail(moves, want[1:]) {
		t.Fatalf("history moves = %v, want to end with %v", moves, want[1:])
	}
}

func equalTail(got, want []exchangev1.ReferralState) bool {
	if len(got) < len(want) {
		return false
	}
	got = got[len(got)-len(want):]
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// A write the exchange refuses when the outbox sends it later is kept,
// marked rejected with the exchange's code and reason, and holds back the
// later writes to its referral until a person drops it; the drop is
// recorded.
func TestOutboxKeepsRejectedWritesWithTheirReason(t *testing.T) {
	x := startExchange(t)
	ctx := context.Background()
	r, err := x.direct("ilo").Referrals.Create(ctx, newReferral("iom", "Sokha", ""))
	if err != nil {
		t.Fatal(err)
	}
	iom, _ := x.fieldOffice("iom")
	x.proxy.SetMode(faultproxy.Refuse)
	// Both moves read the referral before either was made: the second
	// carries an etag the first makes stale.
	if _, err := iom.Referrals.Acknowledge(ctx, r.GetName(), r.GetEtag()); !client.IsQueued(err) {
		t.Fatalf("acknowledge = %v, want queued", err)
	}
	if _, err := iom.Referrals.Accept(ctx, r.GetName(), r.GetEtag()); !client.IsQueued(err) {
		t.Fatalf("accept = %v, want queued", err)
	}
	if _, err := iom.Referrals.Start(ctx, r.GetName(), ""); !client.IsQueued(err) {
		t.Fatalf("start = %v, want queued", err)
	}
	x.proxy.SetMode(faultproxy.Pass)
	for round := 0; round < 2; round++ {
		rep, err := iom.Outbox.Send(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 && (len(rep.Sent) != 1 || len(rep.Rejected) != 1) {
			t.Fatalf("send: %d sent, %d rejected, want 1 and 1", len(rep.Sent), len(rep.Rejected))
		}
		es := entries(t, iom)
		if len(es) != 2 {
			t.Fatalf("round %d: outbox = %+v, want the rejected accept and the start behind it", round, es)
		}
		if es[0].Kind != "accept" || es[0].State != fieldfile.Rejected || es[0].Code != "ABORTED" || !strings.Contains(es[0].LastError, "ETAG_MISMATCH") {
			t.Fatalf("round %d: rejected entry = %+v, want accept, ABORTED with the etag mismatch", round, es[0])
		}
		if es[1].Kind != "start" || es[1].State != fieldfile.Pending || es[1].Attempts != 0 {
			t.Fatalf("round %d: later entry = %+v, want start, pending, never sent", round, es[1])
		}
	}
	dropped, err := iom.Outbox.Drop(entries(t, iom)[0].ID)
	if err != nil || dropped.Kind != "accept" {
		t.Fatalf("drop = %+v, %v", dropped, err)
	}
	// The person accepts by hand, then the start goes.
	if _, err := x.direct("iom").Referrals.Accept(ctx, r.GetName(), ""); err != nil {
		t.Fatal(err)
	}
	rep, err := iom.Outbox.Send(ctx)
	if err != nil || len(rep.Sent) != 1 || len(rep.Left) != 0 {
		t.Fatalf("send after the drop: %+v, %v", rep, err)
	}
}

// cutTheAnswer makes call through the field office while the proxy
// delays every chunk, waits until made shows the exchange has done the
// write, then cuts the line and refuses new connections before the
// answer arrives: the client cannot know the write was made. It returns
// the call's error.
func cutTheAnswer(t *testing.T, x *exchange, call func() error, made func() bool) error {
	t.Helper()
	x.proxy.SetLatency(1200 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- call() }()
	waitFor(t, "the exchange to make the write", made)
	x.proxy.SetMode(faultproxy.Refuse)
	err := <-done
	x.proxy.SetLatency(0)
	x.proxy.SetMode(faultproxy.Pass)
	return err
}

// A write whose first answer was lost (made by the exchange, the line cut
// before the answer came back) is sent again from the outbox and stored
// once: a create by its request id, a state change recognised in the
// referral's history, rows rewritten as they are.
func TestOutboxStoresAWriteOnceWhenItsFirstAnswerIsLost(t *testing.T) {
	x := startExchange(t)
	ctx := context.Background()
	ilo, _ := x.fieldOffice("ilo")
	iloDirect := x.direct("ilo")
	if _, err := ilo.Referrals.Create(ctx, newReferral("iom", "warm-up", "")); err != nil {
		t.Fatal(err) // connects and fetches iom's key
	}
	count := func() int {
		n := 0
		for r, err := range iloDirect.Referrals.Referrals(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			if r != nil {
				n++
			}
		}
		return n
	}
	err := cutTheAnswer(t, x, func() error {
		_, err := ilo.Referrals.Create(ctx, newReferral("iom", "Sokha", ""))
		return err
	}, func() bool { return count() == 2 })
	if !client.IsQueued(err) {
		t.Fatalf("create whose answer was lost = %v, want queued", err)
	}
	rep, err := ilo.Outbox.Send(ctx)
	if err != nil || len(rep.Sent) != 1 || len(rep.Left) != 0 {
		t.Fatalf("send: %+v, %v", rep, err)
	}
	if n := count(); n != 2 {
		t.Fatalf("the exchange holds %d referrals, want 2 (warm-up and the one sent twice)", n)
	}

	// A state change.
	var name string
	for r, err := range iloDirect.Referrals.Referrals(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		name = r.GetName()
	}
	iom, _ := x.fieldOffice("iom")
	iomDirect := x.direct("iom")
	if _, err := iom.Referrals.Acknowledge(ctx, name, ""); err != nil {
		t.Fatal(err)
	}
	state := func() exchangev1.ReferralState {
		r, err := iomDirect.Referrals.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return r.GetState()
	}
	err = cutTheAnswer(t, x, func() error { _, err := iom.Referrals.Accept(ctx, name, ""); return err },
		func() bool { return state() == exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED })
	if !client.IsQueued(err) {
		t.Fatalf("accept whose answer was lost = %v, want queued", err)
	}
	rep, err = iom.Outbox.Send(ctx)
	if err != nil || len(rep.Sent) != 1 || len(rep.Rejected) != 0 || len(rep.Left) != 0 {
		t.Fatalf("send of the accept: %+v, %v; want it taken as made", rep, err)
	}

	// Rows.
	dataset := defineDataset(t, x)
	before := rowChanges(t, iloDirect, dataset, 0)
	rows := []*exchangev1.RowWrite{{Row: row("2026-01", "female", 3)}, {Row: row("2026-01", "male", 4)}}
	err = cutTheAnswer(t, x, func() error { _, err := ilo.Datasets.Write(ctx, dataset, rows); return err },
		func() bool { return len(rowChanges(t, iloDirect, dataset, 0)) == len(before)+2 })
	if !client.IsQueued(err) {
		t.Fatalf("row write whose answer was lost = %v, want queued", err)
	}
	if rep, err := ilo.Outbox.Send(ctx); err != nil || len(rep.Sent) != 1 || len(rep.Left) != 0 {
		t.Fatalf("send of the rows: %+v, %v", rep, err)
	}
	if after := rowChanges(t, iloDirect, dataset, 0); len(after) != 2 {
		t.Fatalf("the dataset's changes after the resend: %v, want the 2 rows once", after)
	}
}

// defineDataset makes a dataset of ilo's that ilo contributes to.
func defineDataset(t *testing.T, x *exchange) string {
	t.Helper()
	min := 0.0
	d, err := x.direct("ilo").Datasets.Create(context.Background(), "agencies/ilo", "returns", &exchangev1.Dataset{
		Title: "Returned victims assisted", Contributors: []string{"agencies/ilo"},
		PeriodType: exchangev1.PeriodType_PERIOD_TYPE_MONTH,
		Schema: &exchangev1.DatasetSchema{
			LocationLevel: exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE,
			Categories:    []*exchangev1.Category{{Key: "sex", Values: []string{"female", "male"}, Required: true}},
			Measures:      []*exchangev1.Measure{{Key: "cases", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER, Required: true, Min: &min}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d.GetName()
}

func row(period, sex string, cases int64) *exchangev1.Row {
	return &exchangev1.Row{Period: period, Location: "KH-12", Categories: map[string]string{"sex": sex},
		Values: map[string]*exchangev1.Value{"cases": {Kind: &exchangev1.Value_IntValue{IntValue: cases}}}}
}

// rowChanges pulls the dataset's changes since revision.
func rowChanges(t *testing.T, c *client.Client, dataset string, since int64) []*exchangev1.Row {
	t.Helper()
	var rows []*exchangev1.Row
	err := c.Datasets.Pull(context.Background(), &exchangev1.PullDatasetRowsRequest{Dataset: dataset, SinceRevision: max(since, 1)},
		func(m *exchangev1.PullDatasetRowsResponse) error { rows = append(rows, m.GetRows()...); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// A referral made with the line down waits in the outbox sealed to the
// receiver's key kept from when the line was up: the raw field file holds
// neither the person's name nor the case notes. To a receiver whose key
// was never fetched on this machine, nothing is queued, and the error
// says what to do.
func TestOutboxNeverHoldsIdentifyingDetailsInClear(t *testing.T) {
	x := startExchange(t)
	ctx := context.Background()
	ilo, path := x.fieldOffice("ilo")
	if err := ilo.Outbox.FetchKeys(ctx, "agencies/iom"); err != nil {
		t.Fatal(err)
	}
	x.proxy.SetMode(faultproxy.Refuse)
	const name, notes = "Chanthy Sophea-Queued", "burn scar left forearm, sister in Poipet"
	const contact = "+855 12 771 093 (aunt Srey)"
	queued := newReferral("iom", name, notes)
	queued.Subject.GuardianContact = contact
	_, err := ilo.Referrals.Create(ctx, queued)
	if !client.IsQueued(err) {
		t.Fatalf("create with the line down = %v, want queued", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{name, "Chanthy", notes, "Poipet", contact, "771 093"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("the field file holds %q in clear", secret)
		}
	}
	if !bytes.Contains(raw, []byte("age-encryption.org/v1")) {
		t.Fatal("the field file holds no sealed details: is the referral in it at all?")
	}
	_, err = ilo.Referrals.Create(ctx, newReferral("unicef", name, notes))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "outbox fetch-keys agencies/unicef") {
		t.Fatalf("create to an agency whose key was never fetched = %v, want FAILED_PRECONDITION saying to fetch it", err)
	}
	if es := entries(t, ilo); len(es) != 1 {
		t.Fatalf("outbox = %+v, want only the referral to iom", es)
	}

	x.proxy.SetMode(faultproxy.Pass)
	rep, err := ilo.Outbox.Send(ctx)
	if err != nil || len(rep.Sent) != 1 {
		t.Fatalf("send: %+v, %v", rep, err)
	}
	for r, err := range x.direct("iom").Referrals.Referrals(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		got, err := x.direct("iom").Referrals.Get(ctx, r.GetName())
		if err != nil || got.GetSubject().GetName() != name || got.GetCaseNotes() != notes {
			t.Fatalf("iom reads %v, %v; want the details opened", got, err)
		}
	}
}

// Every write docs/field-offices.md lists as kept is kept with the line
// down and sent once it is back: referral create and batch create, the
// receiver's moves (acknowledge, accept, start, complete, reject), the
// sender's cancel and revoke consent, dataset rows and a plan apply.
func TestOutboxKeepsEveryCoveredWrite(t *testing.T) {
	x := startExchange(t)
	ctx := context.Background()
	iloDirect := x.direct("ilo")
	refs := make([]*exchangev1.Referral, 4)
	for i := range refs {
		r, err := iloDirect.Referrals.Create(ctx, newReferral("iom", "Sokha", ""))
		if err != nil {
			t.Fatal(err)
		}
		refs[i] = r
	}
	dataset := defineDataset(t, x)
	ilo, _ := x.fieldOffice("ilo")
	iom, _ := x.fieldOffice("iom")
	if err := ilo.Outbox.FetchKeys(ctx, "agencies/iom"); err != nil {
		t.Fatal(err)
	}
	x.proxy.SetMode(faultproxy.Refuse)
	a, b, c, d := refs[0].GetName(), refs[1].GetName(), refs[2].GetName(), refs[3].GetName()
	writes := []struct {
		kind string
		call func() error
	}{
		{"create referral to agencies/iom", func() error { _, err := ilo.Referrals.Create(ctx, newReferral("iom", "Dara", "")); return err }},
		{"create 2 referrals", func() error {
			_, err := ilo.Referrals.BatchCreate(ctx, []*exchangev1.CreateReferralRequest{
				{Referral: newReferral("iom", "Vanna", "")}, {Referral: newReferral("iom", "Chenda", "")}})
			return err
		}},
		{"acknowledge", func() error { _, err := iom.Referrals.Acknowledge(ctx, a, ""); return err }},
		{"accept", func() error { _, err := iom.Referrals.Accept(ctx, a, ""); return err }},
		{"start", func() error { _, err := iom.Referrals.Start(ctx, a, ""); return err }},
		{"complete", func() error {
			_, err := iom.Referrals.Complete(ctx, a, &exchangev1.Outcome{Successful: true, Reason: "counselling given",
				ServicesDelivered: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING}}, "")
			return err
		}},
		{"acknowledge", func() error { _, err := iom.Referrals.Acknowledge(ctx, b, ""); return err }},
		{"reject", func() error {
			_, err := iom.Referrals.Reject(ctx, b, &exchangev1.Rejection{Reason: exchangev1.RejectionReason_REJECTION_REASON_NO_CAPACITY}, "")
			return err
		}},
		{"cancel", func() error { _, err := ilo.Referrals.Cancel(ctx, c, "duplicate case", ""); return err }},
		{"revoke consent", func() error { _, err := ilo.Referrals.RevokeConsent(ctx, d, "withdrawn"); return err }},
		{"write 1 rows", func() error {
			_, err := ilo.Datasets.Write(ctx, dataset, []*exchangev1.RowWrite{{Row: row("2026-02", "female", 1)}})
			return err
		}},
		{"apply 1 plans", func() error {
			_, err := ilo.Plans.Apply(ctx, &exchangev1.ApplyPlansRequest{Parent: "agencies/ilo", Plans: []*exchangev1.Plan{{
				ExternalId: "p-1", Title: "Outreach", Stage: exchangev1.PlanStage_PLAN_STAGE_CONCEPT,
				Niches:        []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION},
				PlannedPeriod: &exchangev1.DatePeriod{Start: &exchangev1.CalendarDate{Year: 2026, Month: 1, Day: 1}, End: &exchangev1.CalendarDate{Year: 2026, Month: 12, Day: 31}},
				Locations:     []*exchangev1.LocationRef{{Country: "KH", Subdivision: "KH-12"}},
				Audience:      &exchangev1.Audience{AllMembers: true},
			}}})
			return err
		}},
	}
	for _, w := range writes {
		if err := w.call(); !client.IsQueued(err) {
			t.Fatalf("%s with the line down = %v, want queued", w.kind, err)
		}
	}
	var kinds []string
	for _, c := range []*client.Client{ilo, iom} {
		for _, e := range entries(t, c) {
			kinds = append(kinds, e.Kind)
		}
	}
	if len(kinds) != len(writes) {
		t.Fatalf("kept %v, want %d writes", kinds, len(writes))
	}
	x.proxy.SetMode(faultproxy.Pass)
	for _, c := range []*client.Client{ilo, iom} {
		rep, err := c.Outbox.Send(ctx)
		if err != nil || len(rep.Left) != 0 {
			t.Fatalf("send: %+v, %v", rep, err)
		}
	}
	states := map[string]exchangev1.ReferralState{a: exchangev1.ReferralState_REFERRAL_STATE_COMPLETED,
		b: exchangev1.ReferralState_REFERRAL_STATE_REJECTED, c: exchangev1.ReferralState_REFERRAL_STATE_CANCELLED}
	for name, want := range states {
		r, err := iloDirect.Referrals.Get(ctx, name)
		if err != nil || r.GetState() != want {
			t.Errorf("%s: %v %v, want %v", name, r.GetState(), err, want)
		}
	}
	if r, err := iloDirect.Referrals.Get(ctx, d); err != nil || r.GetConsent().GetRevokeTime() == nil {
		t.Errorf("%s: consent not revoked (%v)", d, err)
	}
	n := 0
	for range iloDirect.Referrals.Referrals(ctx, nil) {
		n++
	}
	if n != 7 {
		t.Errorf("ilo has %d referrals, want 7", n)
	}
	if rows := rowChanges(t, iloDirect, dataset, 0); len(rows) != 1 {
		t.Errorf("dataset rows: %v, want 1", rows)
	}
	plans, err := client.Collect(iloDirect.Plans.Plans(ctx, nil))
	if err != nil || len(plans) != 1 {
		t.Errorf("plans: %v %v, want 1", plans, err)
	}
}
