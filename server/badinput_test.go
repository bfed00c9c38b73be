package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestMalformedRequests sends well over a thousand malformed requests,
// generated from the descriptors, over real mutual TLS as callers the
// access rules admit, and checks each gets its specific answer: every
// buf.validate rule of every field reachable from every method's request
// broken in turn (INVALID_ARGUMENT naming the field and the rule, or, for
// the items of BatchCreateReferrals and WriteDatasetRows, a rejected item
// naming it), invalid enum numbers, wrong resource-name shapes, lists at
// max_items+1 and at 100,000 items (inside a batch item too, where such a
// list refuses the whole request), messages over the 4 MiB receive limit
// (RESOURCE_EXHAUSTED), well-formed names of missing resources
// (NOT_FOUND) and requests that pass the rules but not the server's own
// checks. The store's content hash must be the same after the run as
// before: no malformed request changes anything. BADINPUT_DUMP=1 logs
// every request sent with its answer.
func TestMalformedRequests(t *testing.T) {
	began := time.Now()
	ctx := context.Background()
	x := startExchange(t)
	sec := x.asSecretariat()
	for _, id := range []string{"ilo", "iom", "unicef"} {
		x.createAgency(sec, id, exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	}
	createWorkingGroup(t, sec, "un-wg", map[string]exchangev1.MembershipRole{
		"ilo": exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER, "iom": exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER,
	})
	ilo := x.asAgency(badAgency)
	if _, err := ilo.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "returns", Dataset: returnsDataset("agencies/iom")}); err != nil {
		t.Fatal(err)
	}

	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	methods := x.server.Methods()
	sort.Strings(methods)
	for m := range badInputBases {
		if !slices.Contains(methods, m) {
			t.Errorf("badInputBases has %s, which the server does not register", m)
		}
	}

	var cases []*badCase
	want, reached := map[string]bool{}, map[string]bool{}
	var uncovered []string
	hugeSeen, nameSeen := map[string]bool{}, map[string]bool{}
	for _, m := range methods {
		newBase, ok := badInputBases[m]
		if !ok {
			t.Errorf("no base request for %s: add a valid one to badInputBases", m)
			continue
		}
		md, err := methodDescriptor(m)
		if err != nil {
			t.Fatal(err)
		}
		base := newBase()
		if got := base.ProtoReflect().Descriptor().FullName(); got != md.Input().FullName() {
			t.Fatalf("base of %s is a %s, want %s", m, got, md.Input().FullName())
		}
		if viol, err := localViolations(v, base); err != nil || len(viol) > 0 {
			t.Fatalf("base of %s is not valid: %v %v", m, viol, err)
		}
		w := &ruleWalker{method: m, base: base, relative: m == exchangev1.ReferralService_BatchCreateReferrals_FullMethodName,
			reached: map[string]bool{}, hugeSeen: hugeSeen, nameSeen: nameSeen}
		w.message(nil, base.ProtoReflect())
		for _, p := range w.problems {
			t.Error("generator: " + p)
		}
		mine := map[string]bool{}
		ruleFields(md.Input(), mine, map[protoreflect.FullName]bool{})
		for f := range mine {
			want[f] = true
			if !w.reached[f] {
				uncovered = append(uncovered, m+" "+f)
			}
		}
		maps.Copy(reached, w.reached)
		cases = append(cases, w.cases...)
		cases = append(cases, oversizeCase(m, base))
	}
	for _, u := range uncovered {
		t.Errorf("a rule reachable from the request is never broken (extend the base request): %s", u)
	}
	cases = append(cases, unknownIDCases()...)
	cases = append(cases, semanticCases()...)

	generated := time.Since(began)

	before, err := x.store.ContentHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	revision := x.store.Revision()

	conns := map[bool]*grpc.ClientConn{false: ilo.conn, true: sec.conn}
	type outcome struct {
		c      *badCase
		answer string
		wrong  string
		exact  bool
	}
	results := make([]outcome, len(cases))
	var wg sync.WaitGroup
	next, big := make(chan int), make(chan struct{}, 2)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c := cases[i]
				if c.big() {
					// Few multi-megabyte messages at once, to bound memory.
					big <- struct{}{}
				}
				answer, wrong, exact := sendBad(ctx, conns[accessRules[c.method] == secretariatOnly], c)
				if c.big() {
					<-big
				}
				results[i] = outcome{c, answer, wrong, exact}
			}
		}()
	}
	sent := time.Now()
	for i := range cases {
		next <- i
	}
	close(next)
	wg.Wait()
	sending := time.Since(sent)

	after, err := x.store.ContentHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("the malformed requests changed the store: content hash %x before, %x after (revision %d → %d)",
			before, after, revision, x.store.Revision())
	}

	byAnswer, byCategory, byMethod := map[string]int{}, map[string]int{}, map[string]int{}
	dump := os.Getenv("BADINPUT_DUMP") != ""
	wrong, exact, validated := 0, 0, 0
	for _, r := range results {
		if dump {
			t.Logf("%s [%s] %s → %s (want %v %s)", r.c.method, r.c.category, r.c.what, r.answer, r.c.code, r.c.field)
		}
		byAnswer[r.answer]++
		byCategory[r.c.category]++
		byMethod[r.c.method]++
		if r.c.rules != nil || r.c.category == "name-shape" {
			validated++
			if r.exact {
				exact++
			}
		}
		if r.wrong == "" {
			continue
		}
		wrong++
		// Tell a generator bug from a wrong answer: the request must
		// break the rule here too.
		if ok, _ := selfCheck(v, r.c); !ok {
			t.Errorf("generator: %s [%s] %s does not break %s here either; fix the generator\n    request: %s", r.c.method, r.c.category, r.c.what, r.c.field, shortText(r.c.req))
			continue
		}
		t.Errorf("%s [%s] %s: %s\n    request: %s", r.c.method, r.c.category, r.c.what, r.wrong, shortText(r.c.req))
	}
	if len(results) < 1000 {
		t.Errorf("only %d malformed requests; the test must send at least 1000", len(results))
	}
	var covered int
	for f := range want {
		if reached[f] {
			covered++
		}
	}
	t.Logf("malformed requests sent: %d in %v (generated in %v), %d answered wrongly; store content hash unchanged: %v",
		len(results), sending.Round(time.Millisecond), generated.Round(time.Millisecond), wrong, bytes.Equal(before, after))
	t.Logf("by answer: %s", tally(byAnswer))
	t.Logf("by category: %s", tally(byCategory))
	byService := map[string]int{}
	for m, n := range byMethod {
		svc, _, _ := strings.Cut(strings.TrimPrefix(m, "/"), "/")
		byService[svc[strings.LastIndex(svc, ".")+1:]] += n
	}
	t.Logf("by service: %s", tally(byService))
	var idle []string
	for _, m := range methods {
		if byMethod[m] == 0 {
			idle = append(idle, m)
		}
	}
	if len(idle) > 0 {
		t.Errorf("methods without a malformed request: %v", idle)
	}
	t.Logf("methods covered: %d of %d registered; rule-bearing fields (and message/oneof rules) broken: %d of %d reachable; %d of %d rule-breaking requests were refused for that one field and rule alone",
		len(byMethod), len(methods), covered, len(want), exact, validated)
}

// big reports whether a case sends megabytes.
func (c *badCase) big() bool { return c.oversize || c.category == "huge" }

// tally formats a tally in descending order.
func tally(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// shortText prints a request, cut to a readable length.
func shortText(m proto.Message) string {
	s := fmt.Sprint(m)
	if len(s) > 600 {
		s = s[:600] + fmt.Sprintf("… (%d bytes encoded)", proto.Size(m))
	}
	return s
}

// selfCheck validates a case's request (or batch item) here: the
// violations must name the case's field with one of its rules. Cases
// whose answer is not a validation failure pass unchecked.
func selfCheck(v protovalidate.Validator, c *badCase) (ok, exact bool) {
	if c.code != codes.InvalidArgument || c.category == "semantic" || c.category == "huge" {
		return true, false
	}
	target, field := c.req, c.field
	if c.item {
		switch r := c.req.(type) {
		case *exchangev1.BatchCreateReferralsRequest:
			target = r.GetRequests()[0]
		case *exchangev1.WriteDatasetRowsRequest:
			target, field = r.GetWrites()[0], strings.TrimPrefix(field, "writes[0].")
		}
	}
	viol, err := localViolations(v, target)
	if err != nil {
		return false, false
	}
	ids, named := viol[field]
	if !named || (c.rules != nil && !slices.ContainsFunc(ids, func(id string) bool { return slices.Contains(c.rules, id) })) {
		return false, false
	}
	return true, len(viol) == 1 && len(ids) == 1
}

// oversizeCase is the base request paddedTo with an unknown field to one
// byte over the server's 4 MiB receive limit; the padding is added when
// the request is sent, so that seventy of them are not held at once.
func oversizeCase(method string, base proto.Message) *badCase {
	return &badCase{method: method, category: "oversize", what: fmt.Sprintf("%d-byte message", defaultMaxRecv+1), req: base,
		code: codes.ResourceExhausted, oversize: true}
}

// paddedTo returns m with an unknown field that makes it size bytes long.
func paddedTo(m proto.Message, size int) proto.Message {
	m = proto.Clone(m)
	rest := size - proto.Size(m) - protowire.SizeTag(protowire.MaxValidNumber)
	pad := rest - protowire.SizeVarint(uint64(rest))
	for protowire.SizeBytes(pad) < rest {
		pad++
	}
	for protowire.SizeBytes(pad) > rest {
		pad--
	}
	raw := protowire.AppendTag(make([]byte, 0, rest+8), protowire.MaxValidNumber, protowire.BytesType)
	raw = protowire.AppendBytes(raw, make([]byte, pad))
	m.ProtoReflect().SetUnknown(raw)
	return m
}

// sendBad sends a case and returns the answer (a code name, or for a
// batch the per-item code), what was wrong with it, if anything, and
// whether the field named was the only one.
func sendBad(ctx context.Context, conn *grpc.ClientConn, c *badCase) (answer, wrong string, exact bool) {
	md, err := methodDescriptor(c.method)
	if err != nil {
		return "error", err.Error(), false
	}
	out, err := newMessageOf(md.Output())
	if err != nil {
		return "error", err.Error(), false
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req := c.req
	if c.oversize {
		req = paddedTo(req, defaultMaxRecv+1)
		if n := proto.Size(req); n != defaultMaxRecv+1 {
			return "error", fmt.Sprintf("paddedTo to %d bytes, want %d", n, defaultMaxRecv+1), false
		}
	}
	if md.IsStreamingClient() || md.IsStreamingServer() {
		err = callStream(ctx, conn, md, c.method, req, out)
	} else {
		err = conn.Invoke(ctx, c.method, req, out)
	}
	st, _ := status.FromError(err)
	answer = codeName(st.Code())
	if c.item {
		if err != nil {
			return answer, fmt.Sprintf("got %v, want OK with the item rejected", err), false
		}
		code, fields := itemResult(out)
		answer = "OK, item " + code
		if code != "INVALID_ARGUMENT" {
			return answer, fmt.Sprintf("item answered %q (%v), want INVALID_ARGUMENT naming %s", code, fields, c.field), false
		}
		if !slices.Contains(fields, c.field) {
			return answer, fmt.Sprintf("item violations %q do not name %s", fields, c.field), false
		}
		return answer, "", len(fields) == 1
	}
	if st.Code() != c.code {
		return answer, fmt.Sprintf("got %v: %q, want %v", st.Code(), st.Message(), c.code), false
	}
	if c.reason != "" {
		info := statusErrorInfo(st)
		if info.GetReason() != c.reason || info.GetDomain() != ErrorDomain {
			return answer, fmt.Sprintf("ErrorInfo %v, want reason %s in domain %s", info, c.reason, ErrorDomain), false
		}
	}
	if c.field == "" {
		return answer, "", false
	}
	found := false
	var got []string
	for _, fv := range fieldViolations(st) {
		got = append(got, fv.GetField()+" "+fv.GetReason())
		if fv.GetField() == c.field && (c.rules == nil || slices.Contains(c.rules, fv.GetReason())) {
			found = true
		}
	}
	if !found {
		return answer, fmt.Sprintf("BadRequest names %q, want %s with rule %v (message %q)", got, c.field, c.rules, st.Message()), false
	}
	return answer, "", len(got) == 1
}

// callStream opens a stream, sends the request and reads the first
// answer; a nil error means the server answered with a message.
func callStream(ctx context.Context, conn *grpc.ClientConn, md protoreflect.MethodDescriptor, method string, req, out proto.Message) error {
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: md.IsStreamingServer(), ClientStreams: md.IsStreamingClient()}, method)
	if err != nil {
		return err
	}
	if err := cs.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	return cs.RecvMsg(out)
}

func statusErrorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// itemResult returns the code and violated fields of the first item of a
// batch response.
func itemResult(out proto.Message) (string, []string) {
	var fields []string
	switch r := out.(type) {
	case *exchangev1.BatchCreateReferralsResponse:
		if len(r.GetResults()) != 1 {
			return fmt.Sprintf("%d results", len(r.GetResults())), nil
		}
		res := r.GetResults()[0]
		for _, v := range res.GetViolations() {
			fields = append(fields, v.GetField())
		}
		if res.GetStatus() != exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED {
			return res.GetStatus().String(), fields
		}
		return res.GetCode(), fields
	case *exchangev1.WriteDatasetRowsResponse:
		if len(r.GetResults()) != 1 {
			return fmt.Sprintf("%d results", len(r.GetResults())), nil
		}
		res := r.GetResults()[0]
		for _, v := range res.GetViolations() {
			fields = append(fields, v.GetField())
		}
		if res.GetAccepted() || r.GetAccepted() != 0 || r.GetRejected() != 1 || r.GetRevision() != 0 {
			return "ACCEPTED", fields
		}
		return res.GetCode(), fields
	}
	return fmt.Sprintf("unexpected %T", out), nil
}

// unknownIDCases address resources that do not exist with well-formed
// names: NOT_FOUND, whatever the resource.
func unknownIDCases() []*badCase {
	ref := "referrals/" + badID
	plan := "agencies/ilo/plans/" + badID
	fp := "agencies/ilo/focalPoints/" + badID
	dataset := "agencies/ilo/datasets/no-such-dataset"
	cases := map[string]proto.Message{
		exchangev1.DirectoryService_GetAgency_FullMethodName:        &exchangev1.GetAgencyRequest{Name: "agencies/no-such-agency"},
		exchangev1.DirectoryService_SuspendAgency_FullMethodName:    &exchangev1.SuspendAgencyRequest{Name: "agencies/no-such-agency", Reason: "r"},
		exchangev1.DirectoryService_ReactivateAgency_FullMethodName: &exchangev1.ReactivateAgencyRequest{Name: "agencies/no-such-agency"},
		exchangev1.DirectoryService_GetFocalPoint_FullMethodName:    &exchangev1.GetFocalPointRequest{Name: fp},
		exchangev1.DirectoryService_UpdateFocalPoint_FullMethodName: &exchangev1.UpdateFocalPointRequest{FocalPoint: baseFocalPoint()},
		exchangev1.DirectoryService_DeleteFocalPoint_FullMethodName: &exchangev1.DeleteFocalPointRequest{Name: fp},
		exchangev1.DirectoryService_GetWorkingGroup_FullMethodName:  &exchangev1.GetWorkingGroupRequest{Name: "workingGroups/no-such-group"},
		exchangev1.DirectoryService_UpdateWorkingGroup_FullMethodName: &exchangev1.UpdateWorkingGroupRequest{
			WorkingGroup: func() *exchangev1.WorkingGroup {
				g := baseWorkingGroup()
				g.Name = "workingGroups/no-such-group"
				return g
			}()},
		exchangev1.DirectoryService_DeleteWorkingGroup_FullMethodName: &exchangev1.DeleteWorkingGroupRequest{Name: "workingGroups/no-such-group"},
		exchangev1.DirectoryService_GetLocation_FullMethodName:        &exchangev1.GetLocationRequest{Name: "locations/KH-99"},
		exchangev1.CertificateService_GetCertificate_FullMethodName:   &exchangev1.GetCertificateRequest{Name: "certificates/abc123"},
		exchangev1.CertificateService_RevokeCertificate_FullMethodName: &exchangev1.RevokeCertificateRequest{
			Name: "certificates/abc123", Reason: "r"},
		exchangev1.ReferralService_GetReferral_FullMethodName:         &exchangev1.GetReferralRequest{Name: ref},
		exchangev1.ReferralService_AcknowledgeReferral_FullMethodName: &exchangev1.AcknowledgeReferralRequest{Name: ref},
		exchangev1.ReferralService_AcceptReferral_FullMethodName:      &exchangev1.AcceptReferralRequest{Name: ref},
		exchangev1.ReferralService_RejectReferral_FullMethodName: &exchangev1.RejectReferralRequest{Name: ref,
			Rejection: &exchangev1.Rejection{Reason: exchangev1.RejectionReason_REJECTION_REASON_NO_CAPACITY}},
		exchangev1.ReferralService_StartReferral_FullMethodName: &exchangev1.StartReferralRequest{Name: ref},
		exchangev1.ReferralService_CompleteReferral_FullMethodName: &exchangev1.CompleteReferralRequest{Name: ref,
			Outcome: &exchangev1.Outcome{Reason: "done"}},
		exchangev1.ReferralService_CancelReferral_FullMethodName:        &exchangev1.CancelReferralRequest{Name: ref, Reason: "r"},
		exchangev1.ReferralService_RevokeReferralConsent_FullMethodName: &exchangev1.RevokeReferralConsentRequest{Name: ref, Reason: "r"},
		exchangev1.ReferralService_EraseReferralDetails_FullMethodName:  &exchangev1.EraseReferralDetailsRequest{Name: ref, Reason: "r", ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST},
		exchangev1.ReferralService_ForwardReferral_FullMethodName:       badInputBases[exchangev1.ReferralService_ForwardReferral_FullMethodName](),
		exchangev1.DatasetService_GetDataset_FullMethodName:             &exchangev1.GetDatasetRequest{Name: dataset},
		exchangev1.DatasetService_UpdateDataset_FullMethodName: &exchangev1.UpdateDatasetRequest{
			Dataset: func() *exchangev1.Dataset { d := baseDataset(); d.Name = dataset; return d }()},
		exchangev1.DatasetService_WriteDatasetRows_FullMethodName: &exchangev1.WriteDatasetRowsRequest{Dataset: dataset,
			Writes: []*exchangev1.RowWrite{{Row: baseRow()}}},
		exchangev1.DatasetService_PullDatasetRows_FullMethodName:        &exchangev1.PullDatasetRowsRequest{Dataset: dataset},
		exchangev1.DatasetService_AggregateDatasetRows_FullMethodName:   &exchangev1.AggregateDatasetRowsRequest{Dataset: dataset},
		exchangev1.DatasetService_LockDatasetPeriod_FullMethodName:      &exchangev1.LockDatasetPeriodRequest{Dataset: dataset, Period: "2026-01"},
		exchangev1.DatasetService_UnlockDatasetPeriod_FullMethodName:    &exchangev1.UnlockDatasetPeriodRequest{Dataset: dataset, Period: "2026-01", Reason: "r"},
		exchangev1.DatasetService_GetDatasetCompleteness_FullMethodName: &exchangev1.GetDatasetCompletenessRequest{Dataset: dataset, Period: "2026-01"},
		exchangev1.DatasetService_WatchDatasetRows_FullMethodName:       &exchangev1.WatchDatasetRowsRequest{Dataset: dataset},
		exchangev1.PlanService_GetPlan_FullMethodName:                   &exchangev1.GetPlanRequest{Name: plan},
		exchangev1.PlanService_UpdatePlan_FullMethodName:                &exchangev1.UpdatePlanRequest{Plan: basePlan()},
		exchangev1.PlanService_CancelPlan_FullMethodName:                &exchangev1.CancelPlanRequest{Name: plan, Reason: "r"},
		exchangev1.PlanService_ListPlanVersions_FullMethodName:          &exchangev1.ListPlanVersionsRequest{Name: plan},
		exchangev1.PlanService_DiffPlanVersions_FullMethodName:          &exchangev1.DiffPlanVersionsRequest{Name: plan, FromVersion: 1},
	}
	var out []*badCase
	for _, m := range slices.Sorted(maps.Keys(cases)) {
		out = append(out, &badCase{method: m, category: "unknown-id", what: "missing resource", req: cases[m],
			code: codes.NotFound, reason: "NOT_FOUND"})
	}
	return out
}

// semanticCases pass the protovalidate rules but not the server's own
// checks (known provinces, real dates, period labels, the dataset's
// schema, update masks); they are refused before anything is written.
func semanticCases() []*badCase {
	var out []*badCase
	add := func(method, what string, req proto.Message, code codes.Code, reason, field string) {
		out = append(out, &badCase{method: method, category: "semantic", what: what, req: req, code: code, reason: reason, field: field})
	}
	referral := func(mutate func(r *exchangev1.Referral)) *exchangev1.CreateReferralRequest {
		r := baseReferral()
		mutate(r)
		return &exchangev1.CreateReferralRequest{Referral: r, RequestId: "semantic-1"}
	}
	create := exchangev1.ReferralService_CreateReferral_FullMethodName
	add(create, "unknown province", referral(func(r *exchangev1.Referral) { r.Location.Subdivision = "KH-99" }),
		codes.InvalidArgument, "INVALID_ARGUMENT", "referral.location.subdivision")
	add(create, "unknown country of nationality", referral(func(r *exchangev1.Referral) { r.Subject.Nationality = "ZZ" }),
		codes.InvalidArgument, "INVALID_ARGUMENT", "referral.subject.nationality")
	add(create, "unknown country", referral(func(r *exchangev1.Referral) {
		r.Subject.CurrentLocation = &exchangev1.LocationRef{Country: "ZZ"}
	}), codes.InvalidArgument, "INVALID_ARGUMENT", "referral.subject.current_location.country")
	add(create, "referral to itself", referral(func(r *exchangev1.Referral) {
		r.Receiver, r.Consent.ReceivingAgency = "agencies/ilo", "agencies/ilo"
	}), codes.InvalidArgument, "INVALID_ARGUMENT", "referral.receiver")
	add(create, "receiver not in the directory", referral(func(r *exchangev1.Referral) {
		r.Receiver, r.Consent.ReceivingAgency = "agencies/no-such-agency", "agencies/no-such-agency"
	}), codes.InvalidArgument, "INVALID_ARGUMENT", "referral.receiver")
	add(create, "consent for another agency", referral(func(r *exchangev1.Referral) { r.Consent.ReceivingAgency = "agencies/unicef" }),
		codes.FailedPrecondition, "FAILED_PRECONDITION", "referral.consent.receiving_agency")
	add(create, "consent for another service", referral(func(r *exchangev1.Referral) {
		r.Consent.Services = []exchangev1.Niche{exchangev1.Niche_NICHE_SHELTER}
	}), codes.FailedPrecondition, "FAILED_PRECONDITION", "referral.consent.services")

	batch := func(mutate func(r *exchangev1.Referral)) *exchangev1.BatchCreateReferralsRequest {
		return &exchangev1.BatchCreateReferralsRequest{Requests: []*exchangev1.CreateReferralRequest{referral(mutate)}}
	}
	for what, mutate := range map[string]func(r *exchangev1.Referral){
		"unknown province": func(r *exchangev1.Referral) { r.Location.Subdivision = "KH-99" },
		"receiver not in the directory": func(r *exchangev1.Referral) {
			r.Receiver, r.Consent.ReceivingAgency = "agencies/no-such-agency", "agencies/no-such-agency"
		},
	} {
		field := "referral.location.subdivision"
		if strings.HasPrefix(what, "receiver") {
			field = "referral.receiver"
		}
		out = append(out, &badCase{method: exchangev1.ReferralService_BatchCreateReferrals_FullMethodName, category: "semantic",
			what: what, req: batch(mutate), item: true, field: field})
	}

	rows := exchangev1.DatasetService_WriteDatasetRows_FullMethodName
	for what, tc := range map[string]struct {
		mutate func(r *exchangev1.Row)
		field  string
	}{
		"month 13":                {func(r *exchangev1.Row) { r.Period = "2026-13" }, "writes[0].row.period"},
		"unknown province":        {func(r *exchangev1.Row) { r.Location = "KH-99" }, "writes[0].row.location"},
		"district for a province": {func(r *exchangev1.Row) { r.Location = "KH-12.1201" }, "writes[0].row.location"},
		"category not in schema":  {func(r *exchangev1.Row) { r.Categories["colour"] = "red" }, "writes[0].row.categories.colour"},
		"value not allowed":       {func(r *exchangev1.Row) { r.Categories["sex"] = "unknown" }, "writes[0].row.categories.sex"},
		"required category":       {func(r *exchangev1.Row) { delete(r.Categories, "sex") }, "writes[0].row.categories.sex"},
		"measure not in schema":   {func(r *exchangev1.Row) { r.Values["bogus"] = intValue(1) }, "writes[0].row.values.bogus"},
		"below min":               {func(r *exchangev1.Row) { r.Values["cases"] = intValue(-1) }, "writes[0].row.values.cases"},
		"wrong type": {func(r *exchangev1.Row) {
			r.Values["cases"] = &exchangev1.Value{Kind: &exchangev1.Value_TextValue{TextValue: "3"}}
		}, "writes[0].row.values.cases"},
		"not a date": {func(r *exchangev1.Row) {
			r.Values["reported_on"] = &exchangev1.Value{Kind: &exchangev1.Value_DateValue{DateValue: date(2026, 2, 30)}}
		}, "writes[0].row.values.reported_on"},
		"not a finite number": {func(r *exchangev1.Row) {
			r.Values["spend"] = &exchangev1.Value{Kind: &exchangev1.Value_DecimalValue{DecimalValue: badNegInf()}}
		}, "writes[0].row.values.spend"},
		"code not in list": {func(r *exchangev1.Row) {
			r.Values["channel"] = &exchangev1.Value{Kind: &exchangev1.Value_CodeValue{CodeValue: "radio"}}
		}, "writes[0].row.values.channel"},
		"text too long": {func(r *exchangev1.Row) {
			r.Values["note"] = &exchangev1.Value{Kind: &exchangev1.Value_TextValue{TextValue: strings.Repeat("n", 21)}}
		}, "writes[0].row.values.note"},
	} {
		r := baseRow()
		tc.mutate(r)
		out = append(out, &badCase{method: rows, category: "semantic", what: what, item: true, field: tc.field,
			req: &exchangev1.WriteDatasetRowsRequest{Dataset: badDataset, Writes: []*exchangev1.RowWrite{{Row: r}}}})
	}
	add(exchangev1.DatasetService_PullDatasetRows_FullMethodName, "period label of another form",
		&exchangev1.PullDatasetRowsRequest{Dataset: badDataset, PeriodFrom: "2026-Q1"}, codes.InvalidArgument, "INVALID_ARGUMENT", "period_from")
	add(exchangev1.DatasetService_PullDatasetRows_FullMethodName, "forged resume token",
		&exchangev1.PullDatasetRowsRequest{Dataset: badDataset, ResumeToken: "AAAAAAAAAAAAAAAAAAAA"}, codes.InvalidArgument, "INVALID_ARGUMENT", "resume_token")
	add(exchangev1.DatasetService_AggregateDatasetRows_FullMethodName, "group by an unknown dimension",
		&exchangev1.AggregateDatasetRowsRequest{Dataset: badDataset, GroupBy: []string{"colour"}}, codes.InvalidArgument, "INVALID_ARGUMENT", "group_by[0]")
	add(exchangev1.DatasetService_GetDatasetCompleteness_FullMethodName, "month 13",
		&exchangev1.GetDatasetCompletenessRequest{Dataset: badDataset, Period: "2026-13"}, codes.InvalidArgument, "INVALID_ARGUMENT", "period")
	add(exchangev1.DatasetService_LockDatasetPeriod_FullMethodName, "month 13",
		&exchangev1.LockDatasetPeriodRequest{Dataset: badDataset, Period: "2026-13"}, codes.InvalidArgument, "INVALID_ARGUMENT", "period")
	add(exchangev1.DatasetService_UnlockDatasetPeriod_FullMethodName, "period not locked",
		&exchangev1.UnlockDatasetPeriodRequest{Dataset: badDataset, Period: "2026-01", Reason: "r"}, codes.FailedPrecondition, "FAILED_PRECONDITION", "period")

	plan := func(mutate func(p *exchangev1.Plan)) *exchangev1.Plan {
		p := basePlan()
		p.Name, p.Etag = "", ""
		mutate(p)
		return p
	}
	createPlan := exchangev1.PlanService_CreatePlan_FullMethodName
	add(createPlan, "30 February", &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: plan(func(p *exchangev1.Plan) {
		p.PlannedPeriod.Start = date(2026, 2, 30)
	})}, codes.InvalidArgument, "INVALID_ARGUMENT", "plan.planned_period.start")
	add(createPlan, "unknown province", &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: plan(func(p *exchangev1.Plan) {
		p.Locations[0].Subdivision = "KH-99"
	})}, codes.InvalidArgument, "INVALID_ARGUMENT", "plan.locations[0].subdivision")
	add(createPlan, "partner not in the directory", &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: plan(func(p *exchangev1.Plan) {
		p.Partners[0].Agency = "agencies/no-such-agency"
	})}, codes.InvalidArgument, "INVALID_ARGUMENT", "plan.partners[0].agency")
	add(createPlan, "cancelled on create", &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: plan(func(p *exchangev1.Plan) {
		p.Stage = exchangev1.PlanStage_PLAN_STAGE_CANCELLED
	})}, codes.InvalidArgument, "INVALID_ARGUMENT", "plan.stage")
	add(exchangev1.PlanService_ApplyPlans_FullMethodName, "30 February", &exchangev1.ApplyPlansRequest{Parent: "agencies/ilo",
		Plans: []*exchangev1.Plan{plan(func(p *exchangev1.Plan) { p.PlannedPeriod.End = date(2026, 2, 30) })}},
		codes.InvalidArgument, "INVALID_ARGUMENT", "plans[0].planned_period.end")
	add(exchangev1.PlanService_FindGaps_FullMethodName, "30 February", &exchangev1.FindGapsRequest{Country: "KH",
		Period: &exchangev1.DatePeriod{Start: date(2026, 2, 30)}}, codes.InvalidArgument, "INVALID_ARGUMENT", "period.start")

	agency := baseAgency()
	agency.Etag = ""
	add(exchangev1.DirectoryService_UpdateAgency_FullMethodName, "badMask names a field that cannot change",
		&exchangev1.UpdateAgencyRequest{Agency: agency, UpdateMask: badMask("state")}, codes.InvalidArgument, "INVALID_ARGUMENT", "update_mask.paths[0]")
	add(exchangev1.DirectoryService_ListAgencies_FullMethodName, "forged page token",
		&exchangev1.ListAgenciesRequest{PageToken: "AAAAAAAAAAAAAAAA"}, codes.InvalidArgument, "INVALID_ARGUMENT", "page_token")
	return out
}

func badNegInf() float64 { return -1 / badZero }

var badZero = 0.0
