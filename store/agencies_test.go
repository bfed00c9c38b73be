package store

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestAgencyCreateGetList(t *testing.T) {
	s, clk := openTest(t)
	ctx := t.Context()

	in := agencyMsg("International Organization for Migration", []string{"KH", "TH"}, []exchangev1.Niche{exchangev1.Niche_NICHE_MIGRATION}, "KH-12")
	// Output-only fields in the request are ignored.
	in.Name = "agencies/other"
	in.State = exchangev1.AgencyState_AGENCY_STATE_SUSPENDED
	in.SuspendReason = "no"
	in.Etag = "forged"
	in.CreateTime = timestamppb.New(time.Unix(0, 0))
	iom, err := s.CreateAgency(ctx, secretariat("CreateAgency"), "iom", in)
	if err != nil {
		t.Fatal(err)
	}
	if iom.GetName() != "agencies/iom" || iom.GetState() != exchangev1.AgencyState_AGENCY_STATE_ACTIVE || iom.GetSuspendReason() != "" {
		t.Errorf("created agency name, state, reason = %q, %v, %q; want agencies/iom, active, empty", iom.GetName(), iom.GetState(), iom.GetSuspendReason())
	}
	if iom.GetEtag() == "" || iom.GetEtag() == "forged" {
		t.Errorf("created agency etag = %q", iom.GetEtag())
	}
	if !iom.GetCreateTime().AsTime().Equal(clk.now()) || !iom.GetUpdateTime().AsTime().Equal(clk.now()) {
		t.Errorf("create, update time = %v, %v; want both %v", iom.GetCreateTime().AsTime(), iom.GetUpdateTime().AsTime(), clk.now())
	}
	if in.GetName() != "agencies/other" || in.GetState() != exchangev1.AgencyState_AGENCY_STATE_SUSPENDED {
		t.Error("CreateAgency changed the caller's message")
	}
	got, err := s.GetAgency(ctx, "agencies/iom")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, iom) {
		t.Errorf("GetAgency = %v, want %v", got, iom)
	}
	if _, err := s.GetAgency(ctx, "agencies/other"); KindOf(err) != KindNotFound {
		t.Errorf("GetAgency(agencies/other) = %v, want not found", err)
	}

	mustCreateAgency(t, s, "ilo", nil)
	list, next, err := s.ListAgencies(ctx, AgencyFilter{}, Page{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"agencies/ilo", "agencies/iom"}; !slices.Equal(names(list), want) || next != "" {
		t.Errorf("ListAgencies = %v, %q; want %v and no token", names(list), next, want)
	}

	t.Run("duplicate", func(t *testing.T) {
		before := countsOf(t, s)
		_, err := s.CreateAgency(ctx, secretariat("CreateAgency"), "iom", agencyMsg("Other", nil, nil))
		if e := wantKind(t, err, KindAlreadyExists); e.Resource != "agencies/iom" {
			t.Errorf("error resource = %q, want agencies/iom", e.Resource)
		}
		if after := countsOf(t, s); after != before {
			t.Errorf("a failed create changed the counts from %v to %v", before, after)
		}
		if got, _ := s.GetAgency(ctx, "agencies/iom"); !proto.Equal(got, iom) {
			t.Error("a failed create changed the agency")
		}
	})
	t.Run("unknown", func(t *testing.T) {
		_, err := s.GetAgency(ctx, "agencies/nobody")
		if e := wantKind(t, err, KindNotFound); e.Resource != "agencies/nobody" {
			t.Errorf("error resource = %q", e.Resource)
		}
		_, err = s.UpdateAgency(ctx, secretariat("UpdateAgency"), "agencies/nobody", "", func(*exchangev1.Agency) error { return nil })
		wantKind(t, err, KindNotFound)
	})
}

func TestAgencyUpdate(t *testing.T) {
	ctx := t.Context()
	op := secretariat("UpdateAgency")
	setName := func(display string) func(*exchangev1.Agency) error {
		return func(a *exchangev1.Agency) error { a.DisplayName = display; return nil }
	}

	t.Run("stale etag", func(t *testing.T) {
		s, _ := openTest(t)
		old := mustCreateAgency(t, s, "iom", nil)
		cur, err := s.UpdateAgency(ctx, op, "agencies/iom", old.GetEtag(), setName("IOM 2"))
		if err != nil {
			t.Fatalf("update with the current etag: %v", err)
		}
		before := countsOf(t, s)
		_, err = s.UpdateAgency(ctx, op, "agencies/iom", old.GetEtag(), setName("IOM 3"))
		if e := wantKind(t, err, KindEtagMismatch); e.Field != "etag" || e.Resource != "agencies/iom" {
			t.Errorf("error field, resource = %q, %q", e.Field, e.Resource)
		}
		if got, _ := s.GetAgency(ctx, "agencies/iom"); !proto.Equal(got, cur) {
			t.Errorf("agency after a stale update = %v, want %v", got, cur)
		}
		if after := countsOf(t, s); after != before {
			t.Errorf("a stale update changed the counts from %v to %v", before, after)
		}
		// An empty etag means "whatever is stored".
		if _, err := s.UpdateAgency(ctx, op, "agencies/iom", "", setName("IOM 4")); err != nil {
			t.Errorf("update without an etag: %v", err)
		}
	})

	t.Run("etag follows content", func(t *testing.T) {
		s, clk := openTest(t)
		a := mustCreateAgency(t, s, "iom", agencyMsg("IOM", nil, nil))
		if again, _ := s.GetAgency(ctx, "agencies/iom"); again.GetEtag() != a.GetEtag() {
			t.Errorf("etag changed between reads: %q, %q", a.GetEtag(), again.GetEtag())
		}
		// Content changes while the clock stands still: the etag moves.
		b, err := s.UpdateAgency(ctx, op, "agencies/iom", a.GetEtag(), setName("IOM renamed"))
		if err != nil {
			t.Fatal(err)
		}
		if b.GetEtag() == a.GetEtag() {
			t.Errorf("etag %q did not change when the display name did", b.GetEtag())
		}
		c, err := s.UpdateAgency(ctx, op, "agencies/iom", b.GetEtag(), func(a *exchangev1.Agency) error {
			a.Countries = []string{"VN"}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.GetEtag() == b.GetEtag() {
			t.Errorf("etag %q did not change when the countries did", c.GetEtag())
		}
		// Time passes but nothing changes: etag, update time and
		// revision stay.
		clk.advance(time.Hour)
		before := countsOf(t, s)
		d, err := s.UpdateAgency(ctx, op, "agencies/iom", c.GetEtag(), setName("IOM renamed"))
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(d, c) {
			t.Errorf("an update that changes nothing returned %v, want the stored %v", d, c)
		}
		if after := countsOf(t, s); after != before {
			t.Errorf("an update that changes nothing changed the counts from %v to %v", before, after)
		}
	})

	t.Run("times", func(t *testing.T) {
		s, clk := openTest(t)
		a := mustCreateAgency(t, s, "iom", nil)
		later := clk.advance(90 * time.Minute)
		b, err := s.UpdateAgency(ctx, op, "agencies/iom", "", setName("IOM 2"))
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(b.GetCreateTime(), a.GetCreateTime()) {
			t.Errorf("create time moved from %v to %v", a.GetCreateTime().AsTime(), b.GetCreateTime().AsTime())
		}
		if !b.GetUpdateTime().AsTime().Equal(later) {
			t.Errorf("update time = %v, want %v", b.GetUpdateTime().AsTime(), later)
		}
	})

	t.Run("mutate cannot change name, times or etag", func(t *testing.T) {
		s, _ := openTest(t)
		a := mustCreateAgency(t, s, "iom", nil)
		b, err := s.UpdateAgency(ctx, op, "agencies/iom", "", func(a *exchangev1.Agency) error {
			a.Name = "agencies/stolen"
			a.CreateTime = timestamppb.New(time.Unix(0, 0))
			a.UpdateTime = timestamppb.New(time.Unix(0, 0))
			a.Etag = "forged"
			a.DisplayName = "changed"
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if b.GetName() != "agencies/iom" || !proto.Equal(b.GetCreateTime(), a.GetCreateTime()) || b.GetEtag() == "forged" || b.GetUpdateTime().AsTime().Unix() == 0 {
			t.Errorf("mutate changed output-only fields: %v", b)
		}
		if _, err := s.GetAgency(ctx, "agencies/stolen"); KindOf(err) != KindNotFound {
			t.Errorf("GetAgency(agencies/stolen) = %v, want not found", err)
		}
		list, _, _ := s.ListAgencies(ctx, AgencyFilter{}, Page{})
		if !slices.Equal(names(list), []string{"agencies/iom"}) {
			t.Errorf("ListAgencies = %v", names(list))
		}
	})

	t.Run("mutate error", func(t *testing.T) {
		s, clk := openTest(t)
		a := mustCreateAgency(t, s, "iom", agencyMsg("IOM", []string{"KH"}, nil))
		clk.advance(time.Minute)
		before := countsOf(t, s)
		errNo := errors.New("refused")
		_, err := s.UpdateAgency(ctx, op, "agencies/iom", "", func(a *exchangev1.Agency) error {
			a.DisplayName = "half-done"
			a.Countries = []string{"LA"}
			return errNo
		})
		if !errors.Is(err, errNo) {
			t.Errorf("UpdateAgency = %v, want the mutate error", err)
		}
		if got, _ := s.GetAgency(ctx, "agencies/iom"); !proto.Equal(got, a) {
			t.Errorf("agency after a failed mutate = %v, want %v", got, a)
		}
		if after := countsOf(t, s); after != before {
			t.Errorf("a failed mutate changed the counts from %v to %v", before, after)
		}
		checkIndexes(t, s)
	})
}

func TestAgencyIdempotentCreate(t *testing.T) {
	ctx := t.Context()
	opA := Op{Actor: "secretariat", Method: "/alltogether.exchange.v1.DirectoryService/CreateAgency", RequestID: "7f1d2c9a"}

	t.Run("retry returns the first result", func(t *testing.T) {
		s, clk := openTest(t)
		first, err := s.CreateAgency(ctx, opA, "iom", agencyMsg("IOM", nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		before := countsOf(t, s)
		clk.advance(time.Minute)
		// A retry returns the first result, even if its body differs.
		again, err := s.CreateAgency(ctx, opA, "iom", agencyMsg("IOM, retried", nil, nil))
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if !proto.Equal(again, first) {
			t.Errorf("retry returned %v, want %v", again, first)
		}
		if after := countsOf(t, s); after != before || after != (counts{1, 1, 1}) {
			t.Errorf("counts after the retry = %v, want %v", after, counts{1, 1, 1})
		}
		if name, ok, err := s.Replayed(ctx, opA); err != nil || !ok || name != "agencies/iom" {
			t.Errorf("Replayed = %q, %v, %v; want agencies/iom, true, nil", name, ok, err)
		}
	})

	t.Run("concurrent retries", func(t *testing.T) {
		s, _ := openTest(t)
		const n = 8
		got := make([]*exchangev1.Agency, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errs[i] = s.CreateAgency(ctx, opA, "iom", agencyMsg("IOM", nil, nil)) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("call %d: %v", i, errs[i])
			}
			if !proto.Equal(got[i], got[0]) {
				t.Errorf("call %d returned %v, call 0 %v", i, got[i], got[0])
			}
		}
		if c := countsOf(t, s); c != (counts{1, 1, 1}) {
			t.Errorf("counts = %v, want %v", c, counts{1, 1, 1})
		}
	})

	t.Run("keys are per actor and method", func(t *testing.T) {
		s, _ := openTest(t)
		if _, err := s.CreateAgency(ctx, opA, "iom", agencyMsg("IOM", nil, nil)); err != nil {
			t.Fatal(err)
		}
		otherActor := opA
		otherActor.Actor = "agencies/unicef"
		// The same request id from another actor is another request.
		b, err := s.CreateAgency(ctx, otherActor, "ilo", agencyMsg("ILO", nil, nil))
		if err != nil || b.GetName() != "agencies/ilo" {
			t.Fatalf("create by another actor with the same request id = %v, %v; want agencies/ilo", b.GetName(), err)
		}
		otherMethod := opA
		otherMethod.Method = "/alltogether.exchange.v1.DirectoryService/ImportAgency"
		if _, err := s.CreateAgency(ctx, otherMethod, "iom", agencyMsg("IOM", nil, nil)); KindOf(err) != KindAlreadyExists {
			t.Errorf("create through another method with the same request id = %v, want already exists", err)
		}
		third := opA
		third.Actor = "agencies/ilo"
		if _, err := s.CreateAgency(ctx, third, "iom", agencyMsg("IOM", nil, nil)); KindOf(err) != KindAlreadyExists {
			t.Errorf("create of an existing id by another actor = %v, want already exists", err)
		}
		if c := countsOf(t, s); c != (counts{2, 2, 2}) {
			t.Errorf("counts = %v, want %v", c, counts{2, 2, 2})
		}
	})

	t.Run("failed create is not remembered", func(t *testing.T) {
		s, _ := openTest(t)
		mustCreateAgency(t, s, "iom", nil)
		if _, err := s.CreateAgency(ctx, opA, "iom", agencyMsg("IOM", nil, nil)); KindOf(err) != KindAlreadyExists {
			t.Fatalf("create = %v, want already exists", err)
		}
		if _, ok, _ := s.Replayed(ctx, opA); ok {
			t.Error("a failed create's request id was recorded")
		}
		if _, err := s.CreateAgency(ctx, opA, "ilo", agencyMsg("ILO", nil, nil)); err != nil {
			t.Errorf("create with the request id of a failed create: %v", err)
		}
	})

	t.Run("survives reopen", func(t *testing.T) {
		s, _ := openTest(t)
		first, err := s.CreateAgency(ctx, opA, "iom", agencyMsg("IOM", nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		s = reopen(t, s, Options{})
		again, err := s.CreateAgency(ctx, opA, "iom", agencyMsg("IOM", nil, nil))
		if err != nil || !proto.Equal(again, first) {
			t.Errorf("retry after reopen = %v, %v; want %v", again, err, first)
		}
	})
}
