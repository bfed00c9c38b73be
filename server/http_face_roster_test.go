package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// jsonRefusalIsGRPCs calls a JSON route that must be refused and fails
// unless the HTTP status is wantHTTP and the body is the gRPC error,
// whose code must be want.
func jsonRefusalIsGRPCs(t *testing.T, c jsonClient, method, path string, body proto.Message, grpcErr error, want codes.Code, wantHTTP int) {
	t.Helper()
	code, _, got, err := c.call(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != wantHTTP || status.Code(grpcErr) != want {
		t.Fatalf("%s %s: HTTP %d %s; gRPC %v; want HTTP %d and %v", method, path, code, got, grpcErr, wantHTTP, want)
	}
	jsonStatusIsGRPCs(t, got, grpcErr)
}

// TestJSONAddsBooksAndChangesConsultantsAsGRPCDoes adds a consultant,
// reads, changes and books it over JSON with real mutual TLS: the reads
// equal gRPC's, and a double booking is refused with the gRPC refusal.
func TestJSONAddsBooksAndChangesConsultantsAsGRPCDoes(t *testing.T) {
	x, _, ilo, iom, unicef, _ := planParties(t)
	ctx := context.Background()
	iloJSON := x.jsonClientFor(t, pki.Agency("ilo"), false)
	iomJSON := x.jsonClientFor(t, pki.Agency("iom"), true)
	unicefJSON := x.jsonClientFor(t, pki.Agency("unicef"), false)

	var created exchangev1.CreateConsultantResponse
	iloJSON.mustCall("POST", "/v1/agencies/ilo/consultants", &exchangev1.CreateConsultantRequest{Consultant: newConsultant("Sok Dara"), RequestId: nextRequestID()}, &created, http.StatusOK)
	k := created.GetConsultant()
	if k.GetDisplayName() != "Sok Dara" || k.GetOwner() != "agencies/ilo" {
		t.Fatalf("created %v", k)
	}
	var got exchangev1.GetConsultantResponse
	iomJSON.mustCall("GET", "/v1/"+k.GetName(), nil, &got, http.StatusOK)
	viaGRPC, err := iom.consultants().GetConsultant(ctx, &exchangev1.GetConsultantRequest{Name: k.GetName()})
	if err != nil || !proto.Equal(got.GetConsultant(), viaGRPC.GetConsultant()) {
		t.Fatalf("JSON read\n%v\ngRPC read\n%v %v", got.GetConsultant(), viaGRPC.GetConsultant(), err)
	}
	var list exchangev1.ListConsultantsResponse
	iomJSON.mustCall("GET", "/v1/agencies/-/consultants?language=km&province=KH-12", nil, &list, http.StatusOK)
	if len(list.GetConsultants()) != 1 || list.GetConsultants()[0].GetName() != k.GetName() {
		t.Fatalf("listed over JSON %v", list.GetConsultants())
	}

	// The adding agency changes the profile; the name comes from the path.
	changed := proto.CloneOf(k)
	changed.Name, changed.DisplayName = "", "Sok Dara Chea"
	var updated exchangev1.UpdateConsultantResponse
	iloJSON.mustCall("PATCH", "/v1/"+k.GetName(), changed, &updated, http.StatusOK)
	if updated.GetConsultant().GetDisplayName() != "Sok Dara Chea" || updated.GetConsultant().GetEtag() == k.GetEtag() {
		t.Fatalf("updated %v", updated.GetConsultant())
	}

	// iom books it; unicef's overlapping weeks are refused as over gRPC.
	booking := func(from, to *exchangev1.CalendarDate) *exchangev1.CreateEngagementRequest {
		return &exchangev1.CreateEngagementRequest{Engagement: &exchangev1.Engagement{
			Period: &exchangev1.DatePeriod{Start: from, End: to}, Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING,
			Purpose: "counselling training for shelter staff",
		}}
	}
	var booked exchangev1.CreateEngagementResponse
	iomJSON.mustCall("POST", "/v1/"+k.GetName()+"/engagements", booking(date(2026, 5, 4), date(2026, 5, 15)), &booked, http.StatusOK)
	if booked.GetEngagement().GetAgency() != "agencies/iom" {
		t.Fatalf("booked %v", booked.GetEngagement())
	}
	double := booking(date(2026, 5, 11), date(2026, 5, 22))
	_, grpcErr := unicef.consultants().CreateEngagement(ctx, &exchangev1.CreateEngagementRequest{Parent: k.GetName(), Engagement: double.GetEngagement()})
	jsonRefusalIsGRPCs(t, unicefJSON, "POST", "/v1/"+k.GetName()+"/engagements", double, grpcErr, codes.FailedPrecondition, http.StatusBadRequest)
	if st := status.Convert(grpcErr); reason(st) != "FAILED_PRECONDITION" {
		t.Fatalf("reason %q", reason(st))
	}
	var engagements exchangev1.ListEngagementsResponse
	iloJSON.mustCall("GET", "/v1/"+k.GetName()+"/engagements", nil, &engagements, http.StatusOK)
	if len(engagements.GetEngagements()) != 1 || engagements.GetEngagements()[0].GetName() != booked.GetEngagement().GetName() {
		t.Fatalf("the refused booking was stored: %v", engagements.GetEngagements())
	}
	if got := engagementsSeen(t, ilo, k.GetName()); len(got) != 1 {
		t.Fatalf("over gRPC: %v", got)
	}
	// Reading and cancelling one engagement: the booking ended, so the
	// cancellation is refused as over gRPC.
	var one exchangev1.GetEngagementResponse
	iomJSON.mustCall("GET", "/v1/"+booked.GetEngagement().GetName(), nil, &one, http.StatusOK)
	if one.GetEngagement().GetName() != booked.GetEngagement().GetName() {
		t.Fatalf("GET engagement: %v", one.GetEngagement())
	}
	cancelReq := &exchangev1.CancelEngagementRequest{Name: booked.GetEngagement().GetName(), Reason: "too late"}
	_, cancelErr := iom.consultants().CancelEngagement(context.Background(), cancelReq)
	jsonRefusalIsGRPCs(t, iomJSON, "POST", "/v1/"+booked.GetEngagement().GetName()+":cancel", &exchangev1.CancelEngagementRequest{Reason: "too late"}, cancelErr, codes.FailedPrecondition, http.StatusBadRequest)

	// The adding agency erases the profile at the consultant's request.
	var erased exchangev1.EraseConsultantResponse
	iloJSON.mustCall("POST", "/v1/"+k.GetName()+":erase", &exchangev1.EraseConsultantRequest{}, &erased, http.StatusOK)
	if e := erased.GetConsultant(); e.GetName() != k.GetName() || e.GetDisplayName() != "" || e.GetContactEmail() != "" {
		t.Fatalf("erased %v", e)
	}
	iomJSON.mustCall("GET", "/v1/agencies/-/consultants", nil, &list, http.StatusOK)
	if len(list.GetConsultants()) != 0 {
		t.Fatalf("an erased consultant is listed: %v", list.GetConsultants())
	}
}

// TestJSONDraftsSubmitsAndReadsReportsAsGRPCDoes drafts and submits a
// report over JSON; its audience reads it as over gRPC, and an agency
// outside it gets gRPC's NOT_FOUND.
func TestJSONDraftsSubmitsAndReadsReportsAsGRPCDoes(t *testing.T) {
	x, _, iom, unicef, _ := reportParties(t)
	ctx := context.Background()
	ngoJSON := x.jsonClientFor(t, pki.Agency("ngo-kh"), true)
	iomJSON := x.jsonClientFor(t, pki.Agency("iom"), false)
	unicefJSON := x.jsonClientFor(t, pki.Agency("unicef"), false)

	fy, q := fiscalQuarterOf(time.Now().UTC(), 7)
	var created exchangev1.CreateReportResponse
	ngoJSON.mustCall("POST", "/v1/agencies/ngo-kh/reports", &exchangev1.CreateReportRequest{RequestId: nextRequestID(), Report: &exchangev1.Report{
		Title: "Quarterly progress", FiscalYear: fy, FiscalYearStartMonth: 7, Quarter: q,
		Audience: &exchangev1.Audience{WorkingGroups: []string{"workingGroups/un-wg"}},
	}}, &created, http.StatusOK)
	name := created.GetReport().GetName()

	// A draft is the owner's alone: iom (an observer of un-wg) does not
	// see it yet.
	code, _, body, err := iomJSON.call("GET", "/v1/"+name, nil)
	if err != nil || code != http.StatusNotFound {
		t.Fatalf("iom reads the draft: HTTP %d %s %v", code, body, err)
	}

	var submitted exchangev1.SubmitReportResponse
	ngoJSON.mustCall("POST", "/v1/"+name+":submit", &exchangev1.SubmitReportRequest{Etag: created.GetReport().GetEtag()}, &submitted, http.StatusOK)
	if submitted.GetReport().GetVersion() != 1 {
		t.Fatalf("submitted %v", submitted.GetReport())
	}
	var got exchangev1.GetReportResponse
	iomJSON.mustCall("GET", "/v1/"+name, nil, &got, http.StatusOK)
	viaGRPC, err := iom.reports().GetReport(ctx, &exchangev1.GetReportRequest{Name: name})
	if err != nil || !proto.Equal(got.GetReport(), viaGRPC.GetReport()) || got.GetReport().GetVersion() != 1 {
		t.Fatalf("JSON read\n%v\ngRPC read\n%v %v", got.GetReport(), viaGRPC.GetReport(), err)
	}
	var list exchangev1.ListReportsResponse
	iomJSON.mustCall("GET", "/v1/agencies/-/reports", nil, &list, http.StatusOK)
	if len(list.GetReports()) != 1 || list.GetReports()[0].GetName() != name {
		t.Fatalf("iom lists %v", list.GetReports())
	}

	// unicef is outside the audience: NOT_FOUND over JSON exactly as over
	// gRPC, and nothing listed.
	_, grpcErr := unicef.reports().GetReport(ctx, &exchangev1.GetReportRequest{Name: name})
	jsonRefusalIsGRPCs(t, unicefJSON, "GET", "/v1/"+name, nil, grpcErr, codes.NotFound, http.StatusNotFound)
	unicefJSON.mustCall("GET", "/v1/agencies/-/reports", nil, &list, http.StatusOK)
	if len(list.GetReports()) != 0 {
		t.Fatalf("unicef lists %v", list.GetReports())
	}
}

// TestJSONListsAndReadsDocumentsAsGRPCDoes lists and reads a shared
// document over JSON: its audience sees what gRPC shows, an agency
// outside it gets gRPC's NOT_FOUND and an empty list.
func TestJSONListsAndReadsDocumentsAsGRPCDoes(t *testing.T) {
	x, _, ilo, _, unicef, ngo, doc := documentParties(t)
	ctx := context.Background()
	data := pdfBytes(t, 3000)
	if _, err := upload(unicef, pdfMeta(doc.GetName(), data), data, 1024); err != nil {
		t.Fatal(err)
	}
	iloJSON := x.jsonClientFor(t, pki.Agency("ilo"), true)
	ngoJSON := x.jsonClientFor(t, pki.Agency("ngo-kh"), false)

	var list exchangev1.ListDocumentsResponse
	iloJSON.mustCall("GET", "/v1/agencies/-/documents?kind=DOCUMENT_KIND_MANUAL&country=KH", nil, &list, http.StatusOK)
	viaGRPC, err := ilo.documents().ListDocuments(ctx, &exchangev1.ListDocumentsRequest{Parent: "agencies/-", Kind: exchangev1.DocumentKind_DOCUMENT_KIND_MANUAL, Country: "KH"})
	if err != nil || !proto.Equal(&list, viaGRPC) || len(list.GetDocuments()) != 1 || list.GetDocuments()[0].GetName() != doc.GetName() {
		t.Fatalf("JSON list %v, gRPC list %v, %v", &list, viaGRPC, err)
	}
	var got exchangev1.GetDocumentResponse
	iloJSON.mustCall("GET", "/v1/"+doc.GetName(), nil, &got, http.StatusOK)
	if !proto.Equal(got.GetDocument(), list.GetDocuments()[0]) {
		t.Fatalf("JSON read %v, listed %v", got.GetDocument(), list.GetDocuments()[0])
	}
	var versions exchangev1.ListDocumentVersionsResponse
	iloJSON.mustCall("GET", "/v1/"+doc.GetName()+":versions", nil, &versions, http.StatusOK)
	if vs := versions.GetVersions(); len(vs) != 1 || vs[0].GetSha256() != sha256Hex(data) {
		t.Fatalf("versions over JSON %v", vs)
	}

	ngoJSON.mustCall("GET", "/v1/agencies/-/documents", nil, &list, http.StatusOK)
	if len(list.GetDocuments()) != 0 {
		t.Fatalf("ngo-kh lists %v", list.GetDocuments())
	}
	_, grpcErr := ngo.documents().GetDocument(ctx, &exchangev1.GetDocumentRequest{Name: doc.GetName()})
	jsonRefusalIsGRPCs(t, ngoJSON, "GET", "/v1/"+doc.GetName(), nil, grpcErr, codes.NotFound, http.StatusNotFound)
}
