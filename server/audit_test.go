package server

import (
	"context"
	"strings"
	"testing"

	"github.com/alltogether/exchange/auditchain"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func (c as) audit() exchangev1.AuditServiceClient { return exchangev1.NewAuditServiceClient(c.conn) }

func allAuditEntries(t *testing.T, c as, pageSize int32) []*exchangev1.AuditEntry {
	t.Helper()
	var out []*exchangev1.AuditEntry
	token := ""
	for {
		resp, err := c.audit().ListAuditEntries(context.Background(), &exchangev1.ListAuditEntriesRequest{PageSize: pageSize, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resp.GetEntries()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
}

func TestAuditChainVerifiesOnlineAndAgenciesSeeTheirOwnEntries(t *testing.T) {
	_, sec, ilo, iom, unicef := threeAgencies(t)
	ctx := context.Background()
	r := refer(t, ilo, "iom")
	if _, err := iom.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName()}); err != nil {
		t.Fatal(err)
	}
	if _, err := unicef.dir.CreateFocalPoint(ctx, &exchangev1.CreateFocalPointRequest{Parent: "agencies/unicef", FocalPoint: &exchangev1.FocalPoint{
		DisplayName: "Lan", Topic: "referrals", Tenure: &exchangev1.DatePeriod{Start: date(2026, 1, 1)}}}); err != nil {
		t.Fatal(err)
	}

	all := allAuditEntries(t, sec, 2)
	v := auditchain.NewVerifier()
	for _, e := range all {
		if err := v.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	head, err := sec.audit().GetAuditHead(ctx, &exchangev1.GetAuditHeadRequest{})
	if err != nil || v.CheckHead(head.GetSequence(), head.GetHash()) != nil {
		t.Fatalf("the chain from the server does not reach its head: %v", err)
	}
	calls := 0 // entries of the calls, besides the certificates the harness recorded as the exchange
	for _, e := range all {
		if e.GetActor() != "exchange" {
			calls++
		}
	}
	if calls != 6 { // 3 agencies, 1 referral, 1 read, 1 focal point
		t.Fatalf("%d entries of calls, want 6", calls)
	}

	mine := allAuditEntries(t, ilo, 100)
	var names []string
	for _, e := range mine {
		names = append(names, e.GetResourceName())
	}
	joined := strings.Join(names, ",")
	if !strings.Contains(joined, "agencies/ilo") || !strings.Contains(joined, r.GetName()) || strings.Contains(joined, "agencies/unicef") {
		t.Fatalf("ilo sees %v", names)
	}
	// The receiver's read of the details is about ilo's referral too.
	reads := 0
	for _, e := range mine {
		if strings.HasSuffix(e.GetMethod(), "/GetReferral") && e.GetActor() == "agencies/iom" {
			reads++
		}
	}
	if reads != 1 {
		t.Fatalf("ilo sees %d reads of its referral by iom, want 1", reads)
	}
	for _, e := range allAuditEntries(t, unicef, 100) {
		if e.GetResourceName() == r.GetName() {
			t.Fatal("a third agency sees audit entries about a referral it is no party to")
		}
	}
}
