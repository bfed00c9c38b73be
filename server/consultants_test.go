package server

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// consultants is a ConsultantService connection as one identity.
func (c as) consultants() exchangev1.ConsultantServiceClient {
	return exchangev1.NewConsultantServiceClient(c.conn)
}

// newConsultant is a profile with consent recorded on 1 March 2026.
func newConsultant(displayName string) *exchangev1.Consultant {
	return &exchangev1.Consultant{
		DisplayName: displayName, ContactEmail: "roster@ilo.example", Languages: []string{"km", "en"},
		Niches:       []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		Provinces:    []string{"KH-12"},
		Availability: []*exchangev1.DatePeriod{{Start: date(2026, 4, 1), End: date(2026, 9, 30)}},
		Consent:      &exchangev1.ConsultantConsent{GivenOn: date(2026, 3, 1), Record: "signed form CF-12"},
	}
}

func addConsultant(t testing.TB, c as, k *exchangev1.Consultant) *exchangev1.Consultant {
	t.Helper()
	resp, err := c.consultants().CreateConsultant(context.Background(), &exchangev1.CreateConsultantRequest{
		Parent: "agencies/" + c.agencyID, Consultant: k, RequestId: "add-" + strings.ReplaceAll(k.GetDisplayName(), " ", "-"),
	})
	if err != nil {
		t.Fatalf("add consultant: %v", err)
	}
	return resp.GetConsultant()
}

func bookConsultant(c as, consultant string, from, to *exchangev1.CalendarDate) (*exchangev1.Engagement, error) {
	resp, err := c.consultants().CreateEngagement(context.Background(), &exchangev1.CreateEngagementRequest{
		Parent: consultant, Engagement: &exchangev1.Engagement{
			Period: &exchangev1.DatePeriod{Start: from, End: to}, Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING,
			Purpose: "counselling training for shelter staff",
		},
	})
	return resp.GetEngagement(), err
}

func engagementsSeen(t *testing.T, c as, consultant string) []string {
	t.Helper()
	resp, err := c.consultants().ListEngagements(context.Background(), &exchangev1.ListEngagementsRequest{Parent: consultant})
	if err != nil {
		t.Fatalf("%s lists engagements: %v", c.agencyID, err)
	}
	var out []string
	for _, e := range resp.GetEngagements() {
		out = append(out, e.GetName())
	}
	return out
}

// TestDoubleBookingIsRefusedNamingTheConflict books one consultant for two
// agencies over real mTLS: the second booking of overlapping weeks fails
// with FAILED_PRECONDITION whose message and ErrorInfo name the first
// engagement, its agency and its dates, and stores nothing.
func TestDoubleBookingIsRefusedNamingTheConflict(t *testing.T) {
	_, _, ilo, iom, unicef, _ := planParties(t)
	ctx := context.Background()
	k := addConsultant(t, ilo, newConsultant("Sok Dara"))
	first, err := bookConsultant(iom, k.GetName(), date(2026, 5, 4), date(2026, 5, 15))
	if err != nil {
		t.Fatal(err)
	}
	if first.GetAgency() != "agencies/iom" {
		t.Fatalf("engagement agency %q", first.GetAgency())
	}
	_, err = bookConsultant(unicef, k.GetName(), date(2026, 5, 11), date(2026, 5, 22))
	st := wantCode(t, err, codes.FailedPrecondition)
	for _, want := range []string{first.GetName(), "agencies/iom", "2026-05-04", "2026-05-15"} {
		if !strings.Contains(st.Message(), want) {
			t.Fatalf("the refusal does not name %s: %q", want, st.Message())
		}
	}
	var resource string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			resource = info.GetMetadata()["resource"]
		}
	}
	if resource != first.GetName() || reason(st) != "FAILED_PRECONDITION" {
		t.Fatalf("ErrorInfo names %q (%s), want %s", resource, reason(st), first.GetName())
	}
	if got := engagementsSeen(t, ilo, k.GetName()); len(got) != 1 {
		t.Fatalf("the refused booking was stored: %v", got)
	}
	// The same agency cannot double-book either; an open end is refused.
	if _, err := bookConsultant(iom, k.GetName(), date(2026, 5, 15), date(2026, 5, 16)); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("the booking agency booked the same day twice: %v", err)
	}
	_, err = iom.consultants().CreateEngagement(ctx, &exchangev1.CreateEngagementRequest{Parent: k.GetName(), Engagement: &exchangev1.Engagement{
		Period: &exchangev1.DatePeriod{Start: date(2026, 7, 1)}, Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Purpose: "open"}})
	if st := wantCode(t, err, codes.InvalidArgument); !strings.Contains(strings.Join(violatedFields(st), ","), "engagement.period.end") {
		t.Fatalf("open-ended engagement: %v", err)
	}
	if _, err := bookConsultant(unicef, k.GetName(), date(2026, 5, 16), date(2026, 5, 29)); err != nil {
		t.Fatalf("the weeks after: %v", err)
	}
}

// TestConsultantIsListedOnlyWithConsent adds a consultant without consent:
// only the adding agency sees it, others get NOT_FOUND identical to a
// missing id and cannot book it; once consent is recorded every member
// sees and may book it.
func TestConsultantIsListedOnlyWithConsent(t *testing.T) {
	_, sec, ilo, iom, _, _ := planParties(t)
	ctx := context.Background()
	unconsented := newConsultant("Chan Sophea")
	unconsented.Consent = nil
	k := addConsultant(t, ilo, unconsented)
	missing := k.GetName()[:len(k.GetName())-26] + strings.Repeat("z", 26)

	if _, err := ilo.consultants().GetConsultant(ctx, &exchangev1.GetConsultantRequest{Name: k.GetName()}); err != nil {
		t.Fatalf("the adding agency cannot read its unlisted consultant: %v", err)
	}
	_, err := iom.consultants().GetConsultant(ctx, &exchangev1.GetConsultantRequest{Name: k.GetName()})
	_, errMissing := iom.consultants().GetConsultant(ctx, &exchangev1.GetConsultantRequest{Name: missing})
	if ok, diff := sameStatus(err, errMissing, k.GetName(), missing); status.Code(err) != codes.NotFound || !ok {
		t.Fatalf("an unlisted consultant is not invisible: %v %s", err, diff)
	}
	if _, err := bookConsultant(iom, k.GetName(), date(2026, 5, 4), date(2026, 5, 8)); status.Code(err) != codes.NotFound {
		t.Fatalf("another agency booked an unlisted consultant: %v", err)
	}
	list, err := iom.consultants().ListConsultants(ctx, &exchangev1.ListConsultantsRequest{Parent: "agencies/-"})
	if err != nil || len(list.GetConsultants()) != 0 {
		t.Fatalf("an unlisted consultant is listed: %v %v", list, err)
	}
	if _, err := sec.consultants().ListConsultants(ctx, &exchangev1.ListConsultantsRequest{Parent: "agencies/-"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("the secretariat reads the roster: %v", err)
	}

	k.Consent = &exchangev1.ConsultantConsent{GivenOn: date(2026, 4, 2), Record: "email to roster@ilo.example"}
	up, err := ilo.consultants().UpdateConsultant(ctx, &exchangev1.UpdateConsultantRequest{Consultant: k})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iom.consultants().UpdateConsultant(ctx, &exchangev1.UpdateConsultantRequest{Consultant: up.GetConsultant()}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("another agency changed the profile: %v", err)
	}
	list, err = iom.consultants().ListConsultants(ctx, &exchangev1.ListConsultantsRequest{Parent: "agencies/-", Language: "km", Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Province: "KH-12"})
	if err != nil || len(list.GetConsultants()) != 1 || list.GetConsultants()[0].GetName() != k.GetName() {
		t.Fatalf("a consultant with consent is not listed: %v %v", list, err)
	}
	if _, err := bookConsultant(iom, k.GetName(), date(2026, 5, 4), date(2026, 5, 8)); err != nil {
		t.Fatalf("booking a listed consultant: %v", err)
	}
}

// TestEngagementsAreSeenByTheBookerAndTheAddingAgency books a consultant
// of ilo for iom and for unicef: each booker sees its own engagement, ilo
// sees both, ngo-kh (a member that booked nothing) sees none.
func TestEngagementsAreSeenByTheBookerAndTheAddingAgency(t *testing.T) {
	_, _, ilo, iom, unicef, ngo := planParties(t)
	k := addConsultant(t, ilo, newConsultant("Keo Vanna"))
	a, err := bookConsultant(iom, k.GetName(), date(2026, 5, 4), date(2026, 5, 8))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bookConsultant(unicef, k.GetName(), date(2026, 6, 1), date(2026, 6, 5))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    as
		want []string
	}{{ilo, []string{a.GetName(), b.GetName()}}, {iom, []string{a.GetName()}}, {unicef, []string{b.GetName()}}, {ngo, nil}} {
		if got := engagementsSeen(t, tc.c, k.GetName()); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s sees %v, want %v", tc.c.agencyID, got, tc.want)
		}
	}
}

// TestErasedConsultantKeepsItsEngagements erases a consultant on request
// through the API: the audit chain records the reason person-request,
// the record answers with no personal field, it is no longer listed nor
// bookable, the booking agency still reads its engagement of an erased
// consultant, and an agency that never booked it gets NOT_FOUND.
func TestErasedConsultantKeepsItsEngagements(t *testing.T) {
	x, _, ilo, iom, unicef, _ := planParties(t)
	ctx := context.Background()
	k := addConsultant(t, ilo, newConsultant("Lim Sreymom"))
	e, err := bookConsultant(iom, k.GetName(), date(2026, 5, 4), date(2026, 5, 8))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iom.consultants().EraseConsultant(ctx, &exchangev1.EraseConsultantRequest{Name: k.GetName()}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("the booking agency erased the profile: %v", err)
	}
	resp, err := ilo.consultants().EraseConsultant(ctx, &exchangev1.EraseConsultantRequest{Name: k.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := x.store.AuditEntries(ctx, 0, 1000)
	if last := entries[len(entries)-1]; err != nil || last.GetResourceName() != k.GetName() || last.GetReason() != "person-request" || last.GetActor() != "agencies/ilo" {
		t.Fatalf("the erasure is not audited with its reason: %v %v", last, err)
	}
	got, err := iom.consultants().GetConsultant(ctx, &exchangev1.GetConsultantRequest{Name: k.GetName()})
	if err != nil {
		t.Fatalf("the booking agency lost sight of the erased consultant: %v", err)
	}
	want := &exchangev1.Consultant{Name: k.GetName(), Owner: "agencies/ilo", Erased: true}
	for _, c := range []*exchangev1.Consultant{resp.GetConsultant(), got.GetConsultant()} {
		c = proto.Clone(c).(*exchangev1.Consultant)
		if c.GetEraseTime() == nil {
			t.Fatal("no erase time")
		}
		c.EraseTime, c.CreateTime, c.UpdateTime, c.Etag = nil, nil, nil, ""
		if !proto.Equal(c, want) {
			t.Fatalf("after erasure the record still holds personal data: %v", c)
		}
	}
	if got := engagementsSeen(t, iom, k.GetName()); len(got) != 1 || got[0] != e.GetName() {
		t.Fatalf("the engagement did not survive the erasure: %v", got)
	}
	list, err := unicef.consultants().ListConsultants(ctx, &exchangev1.ListConsultantsRequest{Parent: "agencies/-"})
	if err != nil || len(list.GetConsultants()) != 0 {
		t.Fatalf("an erased consultant is listed: %v %v", list, err)
	}
	if _, err := bookConsultant(iom, k.GetName(), date(2026, 7, 1), date(2026, 7, 3)); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("an erased consultant was booked: %v", err)
	}
	// An agency that never booked the erased consultant learns nothing of
	// it, not even that it existed.
	missing := k.GetName()[:len(k.GetName())-26] + strings.Repeat("z", 26)
	_, err = unicef.consultants().GetConsultant(ctx, &exchangev1.GetConsultantRequest{Name: k.GetName()})
	_, errMissing := unicef.consultants().GetConsultant(ctx, &exchangev1.GetConsultantRequest{Name: missing})
	if ok, diff := sameStatus(err, errMissing, k.GetName(), missing); status.Code(err) != codes.NotFound || !ok {
		t.Fatalf("an erased consultant unicef never booked is not invisible to it: %v %s", err, diff)
	}
	if _, err := bookConsultant(unicef, k.GetName(), date(2026, 7, 1), date(2026, 7, 3)); status.Code(err) != codes.NotFound {
		t.Fatalf("unicef booking an erased consultant it never booked: %v", err)
	}
	if _, err := ilo.consultants().EraseConsultant(ctx, &exchangev1.EraseConsultantRequest{Name: k.GetName()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("erasing twice: %v", err)
	}
}

// TestCancelledEngagementFreesItsWeeks: the booking agency cancels an
// engagement that has not ended, with a reason; the engagement stays,
// marked, and its weeks take another booking. The adding agency is
// refused (PERMISSION_DENIED), another agency sees nothing (NOT_FOUND), a
// second cancellation, an ended engagement and a stale etag are refused,
// and nothing refused changes the store.
func TestCancelledEngagementFreesItsWeeks(t *testing.T) {
	x, _, ilo, iom, unicef, _ := planParties(t)
	ctx := context.Background()
	k := addConsultant(t, ilo, newConsultant("Sok Dara"))
	// Weeks ahead of today, whatever day the test runs.
	from := time.Now().UTC().AddDate(0, 2, 0)
	day := func(t time.Time) *exchangev1.CalendarDate {
		return date(int32(t.Year()), int32(t.Month()), int32(t.Day()))
	}
	booked, err := bookConsultant(iom, k.GetName(), day(from), day(from.AddDate(0, 0, 11)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bookConsultant(unicef, k.GetName(), day(from.AddDate(0, 0, 7)), day(from.AddDate(0, 0, 18))); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("overlapping a standing engagement: %v", err)
	}
	cancel := func(c as, etag, reason string) (*exchangev1.Engagement, error) {
		resp, err := c.consultants().CancelEngagement(ctx, &exchangev1.CancelEngagementRequest{Name: booked.GetName(), Etag: etag, Reason: reason})
		return resp.GetEngagement(), err
	}
	before := x.store.Revision()
	_, err = cancel(ilo, "", "the adding agency")
	wantCode(t, err, codes.PermissionDenied)
	_, err = cancel(unicef, "", "another agency")
	wantCode(t, err, codes.NotFound)
	_, err = unicef.consultants().GetEngagement(ctx, &exchangev1.GetEngagementRequest{Name: booked.GetName()})
	wantCode(t, err, codes.NotFound)
	_, err = cancel(iom, "stale", "training postponed")
	wantCode(t, err, codes.Aborted)
	_, err = cancel(iom, booked.GetEtag(), "")
	if st := wantCode(t, err, codes.InvalidArgument); slices.IndexFunc(violatedFields(st), func(f string) bool { return f != "reason" }) >= 0 {
		t.Fatalf("an empty reason: %v", violatedFields(st))
	}
	if x.store.Revision() != before {
		t.Fatal("a refused cancellation changed the store")
	}

	got, err := cancel(iom, booked.GetEtag(), "training postponed to next quarter")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetCancelTime() == nil || got.GetCancelReason() != "training postponed to next quarter" || got.GetAgency() != "agencies/iom" ||
		!proto.Equal(got.GetPeriod(), booked.GetPeriod()) || got.GetEtag() == booked.GetEtag() {
		t.Fatalf("cancelled: %v", got)
	}
	// The adding agency reads it, cancelled, as history.
	read, err := ilo.consultants().GetEngagement(ctx, &exchangev1.GetEngagementRequest{Name: booked.GetName()})
	if err != nil || read.GetEngagement().GetCancelReason() != got.GetCancelReason() {
		t.Fatalf("the adding agency reads %v, %v", read.GetEngagement(), err)
	}
	if seen := engagementsSeen(t, ilo, k.GetName()); len(seen) != 1 || seen[0] != booked.GetName() {
		t.Fatalf("the cancelled engagement left the list: %v", seen)
	}
	_, err = cancel(iom, "", "again")
	if st := wantCode(t, err, codes.FailedPrecondition); !strings.Contains(st.Message(), "already cancelled") {
		t.Fatalf("a second cancellation: %v", st.Message())
	}
	// Its weeks are free.
	if _, err := bookConsultant(unicef, k.GetName(), day(from.AddDate(0, 0, 7)), day(from.AddDate(0, 0, 18))); err != nil {
		t.Fatalf("the weeks of a cancelled engagement: %v", err)
	}
	// An engagement that has ended stays as it was.
	past, err := bookConsultant(iom, k.GetName(), date(2026, 5, 4), date(2026, 5, 15))
	if err != nil {
		t.Fatal(err)
	}
	_, err = iom.consultants().CancelEngagement(ctx, &exchangev1.CancelEngagementRequest{Name: past.GetName(), Reason: "too late"})
	if st := wantCode(t, err, codes.FailedPrecondition); !strings.Contains(st.Message(), "ended on 2026-05-15") {
		t.Fatalf("cancelling an ended engagement: %v", st.Message())
	}
}
