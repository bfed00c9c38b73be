package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// Fuzz targets for request validation and the two ingest paths. Run them
// with `make fuzz` (see the Makefile); crashers land in testdata/fuzz and
// are replayed by every `go test` from then on.

// fuzzRequestTypes lists the request type of every method of the
// exchange's services, in name order; a fuzz input's first byte picks one.
func fuzzRequestTypes(tb testing.TB) []protoreflect.MessageType {
	seen := map[protoreflect.FullName]bool{}
	protoregistry.GlobalFiles.RangeFilesByPackage("alltogether.exchange.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			methods := fd.Services().Get(i).Methods()
			for j := 0; j < methods.Len(); j++ {
				seen[methods.Get(j).Input().FullName()] = true
			}
		}
		return true
	})
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, string(n))
	}
	sort.Strings(names)
	out := make([]protoreflect.MessageType, 0, len(names))
	for _, n := range names {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(n))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, mt)
	}
	return out
}

// fuzzServer is a Server with what validation and the handlers under
// fuzzing need, without a listener.
func fuzzServer(tb testing.TB, st *store.Store) *Server {
	v, err := protovalidate.New()
	if err != nil {
		tb.Fatal(err)
	}
	return &Server{store: st, validator: v, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now, heartbeat: time.Second}
}

// checkValidationAnswer validates msg as the interceptor does and checks the
// shape of a refusal: INVALID_ARGUMENT (never INTERNAL, which would mean
// a rule failed to run), the ErrorInfo, and a BadRequest whose every
// violation carries its rule id. It reports whether msg is valid.
func checkValidationAnswer(t *testing.T, s *Server, msg proto.Message) bool {
	t.Helper()
	err := s.validate(msg)
	if err == nil {
		return true
	}
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("validation answered %v (%q), want INVALID_ARGUMENT\n%v", st.Code(), st.Message(), msg)
	}
	if info := statusErrorInfo(st); info.GetReason() != "INVALID_ARGUMENT" || info.GetDomain() != ErrorDomain {
		t.Fatalf("validation refusal carries ErrorInfo %v", info)
	}
	fvs := fieldViolations(st)
	if len(fvs) == 0 || !strings.HasPrefix(st.Message(), "invalid request: ") {
		t.Fatalf("validation refusal %q names no field", st.Message())
	}
	for _, fv := range fvs {
		if fv.GetReason() == "" || fv.GetDescription() == "" {
			t.Fatalf("violation %v has no rule id or description", fv)
		}
	}
	if again := s.validate(msg); again == nil || again.Error() != err.Error() {
		t.Fatalf("validation is not deterministic: %v, then %v", err, again)
	}
	return false
}

// checkDecodingRefusal checks the server codec's refusal of bytes:
// INVALID_ARGUMENT with the ErrorInfo, saying the request could not be
// decoded or naming a list over its bound.
func checkDecodingRefusal(t *testing.T, err error) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("the codec answered %v (%q), want INVALID_ARGUMENT", st.Code(), st.Message())
	}
	if info := statusErrorInfo(st); info.GetReason() != "INVALID_ARGUMENT" || info.GetDomain() != ErrorDomain {
		t.Fatalf("the codec's refusal carries ErrorInfo %v", info)
	}
	if !strings.HasPrefix(st.Message(), "the request could not be decoded as ") && len(fieldViolations(st)) == 0 {
		t.Fatalf("the codec's refusal %q names neither the type nor a field", st.Message())
	}
}

// wantFieldError checks an error of the server's own checks: nil, or a
// store error of an expected kind whose field starts with prefix.
func wantFieldError(t *testing.T, what string, err error, prefix string, kinds ...store.Kind) {
	t.Helper()
	if err == nil {
		return
	}
	var e *store.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %v is a %T, want a *store.Error", what, err, err)
	}
	if !slices.Contains(kinds, e.Kind) {
		t.Fatalf("%s: error kind %v (%v), want one of %v", what, e.Kind, err, kinds)
	}
	if e.Field != "" && !strings.HasPrefix(e.Field, prefix) {
		t.Fatalf("%s: error names field %q, outside %q", what, e.Field, prefix)
	}
}

// fuzzDatasets are datasets of every period type and location level, for
// the row and period checks.
func fuzzDatasets() []*exchangev1.Dataset {
	monthly := returnsDataset("agencies/iom")
	monthly.Name, monthly.Owner = badDataset, "agencies/ilo"
	quarterly := proto.Clone(monthly).(*exchangev1.Dataset)
	quarterly.PeriodType, quarterly.Schema.LocationLevel = exchangev1.PeriodType_PERIOD_TYPE_QUARTER, exchangev1.AdminLevel_ADMIN_LEVEL_DISTRICT
	yearly := proto.Clone(monthly).(*exchangev1.Dataset)
	yearly.PeriodType, yearly.Schema.LocationLevel = exchangev1.PeriodType_PERIOD_TYPE_YEAR, exchangev1.AdminLevel_ADMIN_LEVEL_COUNTRY
	fiscal := proto.Clone(monthly).(*exchangev1.Dataset)
	fiscal.PeriodType, fiscal.FiscalYearStartMonth = exchangev1.PeriodType_PERIOD_TYPE_FISCAL_YEAR, 7
	return []*exchangev1.Dataset{monthly, quarterly, yearly, fiscal}
}

// FuzzValidateRequests decodes a request of any method through the
// server's codec (whose refusals must be clear), validates it as the
// interceptor does, and runs the server's pure checks on what passes:
// no panic, no INTERNAL, and every error names a field of the request.
func FuzzValidateRequests(f *testing.F) {
	types := fuzzRequestTypes(f)
	index := map[protoreflect.FullName]int{}
	for i, mt := range types {
		index[mt.Descriptor().FullName()] = i
	}
	seed := func(m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{byte(index[m.ProtoReflect().Descriptor().FullName()])}, b...))
	}
	for _, m := range slices.Sorted(maps.Keys(badInputBases)) {
		base := badInputBases[m]()
		if _, ok := index[base.ProtoReflect().Descriptor().FullName()]; ok {
			seed(base)
		}
	}
	// Requests that pass the rules but not the server's checks.
	for _, c := range semanticCases() {
		seed(c.req)
	}
	seed(&exchangev1.UpdateAgencyRequest{Agency: baseAgency(), UpdateMask: badMask("kind", "state", "no_such_field", "coverage")})
	seed(&exchangev1.UpdateDatasetRequest{Dataset: baseDataset(), UpdateMask: badMask("schema")})
	f.Add([]byte{})
	f.Add([]byte{0xff, 0x0a, 0x02, 0x08, 0x01})
	// Bytes the server's codec refuses: undecodable, and lists over their
	// bound (refused before decoding).
	getAgency := byte(index["alltogether.exchange.v1.GetAgencyRequest"])
	for _, c := range undecodable {
		f.Add(append([]byte{getAgency}, c.payload...))
	}
	seed(&exchangev1.AggregateDatasetRowsRequest{Dataset: badDataset, Locations: make([]string, 201)})
	seed(&exchangev1.CreateReferralRequest{Referral: &exchangev1.Referral{Subject: &exchangev1.Subject{Languages: make([]string, 11)}}})

	srv := fuzzServer(f, nil)
	datasets := fuzzDatasets()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		msg := types[int(data[0])%len(types)].New().Interface()
		err := receive(func(v any) error { return requestCodec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data[1:])}, v) }, msg)
		if err != nil {
			checkDecodingRefusal(t, err)
			return
		}
		valid := checkValidationAnswer(t, srv, msg)
		if id := requestID(context.Background(), msg); valid && !requestIDShape.MatchString(id) {
			t.Fatalf("request id %q of a valid request has the wrong shape", id)
		}
		if !valid {
			return
		}
		pureChecks(t, srv, datasets, msg)
	})
}

// pureChecks runs the server's own checks that need no store on a
// request that passed validation, as the handlers do.
func pureChecks(t *testing.T, srv *Server, datasets []*exchangev1.Dataset, msg proto.Message) {
	t.Helper()
	invalid := []store.Kind{store.KindInvalidArgument}
	consentKinds := []store.Kind{store.KindInvalidArgument, store.KindFailedPrecondition}
	switch r := msg.(type) {
	case *exchangev1.CreateReferralRequest:
		wantFieldError(t, "checkNewReferral", checkNewReferral("agencies/ilo", "referral", r.GetReferral()), "referral.", consentKinds...)
	case *exchangev1.BatchCreateReferralsRequest:
		for _, item := range r.GetRequests() {
			if srv.validate(item) == nil {
				wantFieldError(t, "checkNewReferral", checkNewReferral("agencies/ilo", "referral", item.GetReferral()), "referral.", consentKinds...)
			}
		}
	case *exchangev1.ForwardReferralRequest:
		wantFieldError(t, "checkConsent", checkConsent("consent", r.GetConsent(), r.GetReceiver(), r.GetService().GetNiche()), "consent.", consentKinds...)
	case *exchangev1.UpdateAgencyRequest:
		dst := baseAgency()
		wantFieldError(t, "applyMask", applyMask(dst, r.GetAgency(), r.GetUpdateMask(), slices.Concat(agencyMutableByAgency, agencySecretariatFields), "agency"), "", invalid...)
		for i, l := range dst.GetCoverage() {
			wantFieldError(t, "checkLocationRef", checkLocationRef(fmt.Sprintf("agency.coverage[%d]", i), l), "agency.coverage", invalid...)
		}
	case *exchangev1.CreateAgencyRequest:
		for i, l := range r.GetAgency().GetCoverage() {
			wantFieldError(t, "checkLocationRef", checkLocationRef(fmt.Sprintf("agency.coverage[%d]", i), l), "agency.coverage", invalid...)
		}
	case *exchangev1.CreateFocalPointRequest:
		wantFieldError(t, "checkPeriod", checkPeriod("focal_point.tenure", r.GetFocalPoint().GetTenure()), "focal_point.tenure", invalid...)
	case *exchangev1.UpdateFocalPointRequest:
		wantFieldError(t, "checkPeriod", checkPeriod("focal_point.tenure", r.GetFocalPoint().GetTenure()), "focal_point.tenure", invalid...)
		wantFieldError(t, "applyMask", applyMask(baseFocalPoint(), r.GetFocalPoint(), r.GetUpdateMask(), focalPointMutable, "focal_point"), "", invalid...)
	case *exchangev1.UpdateWorkingGroupRequest:
		wantFieldError(t, "applyMask", applyMask(baseWorkingGroup(), r.GetWorkingGroup(), r.GetUpdateMask(), workingGroupMutable, "working_group"), "", invalid...)
	case *exchangev1.ListFocalPointsRequest:
		wantFieldError(t, "checkDate", checkDate("active_on", r.GetActiveOn()), "active_on", invalid...)
	case *exchangev1.CreateDatasetRequest:
		wantFieldError(t, "checkDatasetDefinition", checkDatasetDefinition("dataset", r.GetDataset()), "dataset.", invalid...)
	case *exchangev1.UpdateDatasetRequest:
		wantFieldError(t, "checkDatasetDefinition", checkDatasetDefinition("dataset", r.GetDataset()), "dataset.", invalid...)
		for _, old := range datasets {
			next := proto.Clone(old).(*exchangev1.Dataset)
			if err := applyMask(next, r.GetDataset(), r.GetUpdateMask(), datasetMutable, "dataset"); err != nil {
				wantFieldError(t, "applyMask", err, "", invalid...)
				continue
			}
			wantFieldError(t, "checkSchemaChange", checkSchemaChange("dataset", old, next), "dataset.", invalid...)
		}
	case *exchangev1.WriteDatasetRowsRequest:
		for i, w := range r.GetWrites() {
			if srv.validate(w) != nil {
				continue
			}
			field := fmt.Sprintf("writes[%d].row", i)
			for _, d := range datasets {
				for _, v := range rowViolations(field, d, w.GetRow(), w.GetDelete(), 0) {
					if !strings.HasPrefix(v.GetField(), field) || v.GetDescription() == "" {
						t.Fatalf("row violation %v outside %s", v, field)
					}
				}
			}
			store.RowKey(w.GetRow())
		}
	case *exchangev1.PullDatasetRowsRequest:
		resumeFingerprint(r)
		filter := rowFilter{locations: r.GetLocations(), contributors: r.GetContributors(), categories: r.GetCategories()}
		filter.keep(baseRow())
		for _, d := range datasets {
			wantFieldError(t, "checkPeriodBounds", checkPeriodBounds(d, r.GetPeriodFrom(), r.GetPeriodTo()), "period_", invalid...)
		}
	case *exchangev1.AggregateDatasetRowsRequest:
		for _, d := range datasets {
			wantFieldError(t, "checkPeriodBounds", checkPeriodBounds(d, r.GetPeriodFrom(), r.GetPeriodTo()), "period_", invalid...)
		}
		for _, g := range r.GetGroupBy() {
			groupValue(baseRow(), g)
		}
	case *exchangev1.LockDatasetPeriodRequest:
		for _, d := range datasets {
			wantFieldError(t, "checkPeriodLabel", checkPeriodLabel("period", d, r.GetPeriod()), "period", invalid...)
		}
	case *exchangev1.UnlockDatasetPeriodRequest:
		for _, d := range datasets {
			wantFieldError(t, "checkPeriodLabel", checkPeriodLabel("period", d, r.GetPeriod()), "period", invalid...)
		}
	case *exchangev1.GetDatasetCompletenessRequest:
		for _, d := range datasets {
			wantFieldError(t, "checkPeriodLabel", checkPeriodLabel("period", d, r.GetPeriod()), "period", invalid...)
		}
	case *exchangev1.CreatePlanRequest:
		planChecks(t, "plan", r.GetPlan(), nil)
	case *exchangev1.UpdatePlanRequest:
		planChecks(t, "plan", r.GetPlan(), r)
	case *exchangev1.ApplyPlansRequest:
		for i, p := range r.GetPlans() {
			planChecks(t, fmt.Sprintf("plans[%d]", i), p, nil)
		}
	case *exchangev1.ListPlansRequest:
		wantFieldError(t, "checkOptionalPeriod", checkOptionalPeriod("period", r.GetPeriod()), "period", invalid...)
	case *exchangev1.FindOverlapsRequest:
		wantFieldError(t, "checkOptionalPeriod", checkOptionalPeriod("period", r.GetPeriod()), "period", invalid...)
		overlapFingerprint(r)
		if r.GetPageToken() != "" {
			decodeOverlapToken(overlapFingerprint(r), r.GetPageToken())
		}
	case *exchangev1.FindGapsRequest:
		wantFieldError(t, "checkPeriod", checkPeriod("period", r.GetPeriod()), "period", invalid...)
	case *exchangev1.GetCoverageRequest:
		wantFieldError(t, "checkOptionalPeriod", checkOptionalPeriod("period", r.GetPeriod()), "period", invalid...)
	}
}

// planChecks runs the pure part of the plan checks: normalisation, the
// cancelled stage, provinces, dates, and for an update the mask and the
// diff against a stored plan.
func planChecks(t *testing.T, field string, in *exchangev1.Plan, update *exchangev1.UpdatePlanRequest) {
	t.Helper()
	invalid := []store.Kind{store.KindInvalidArgument}
	p := normalizePlan(in)
	if again := normalizePlan(p); !proto.Equal(again, p) {
		t.Fatalf("normalizePlan is not idempotent:\n%v\n%v", p, again)
	}
	wantFieldError(t, "refuseCancelled", refuseCancelled(field, p), field+".stage", invalid...)
	for i, l := range p.GetLocations() {
		f := fmt.Sprintf("%s.locations[%d]", field, i)
		wantFieldError(t, "checkLocationRef", checkLocationRef(f, l), f, invalid...)
	}
	wantFieldError(t, "checkPeriod", checkPeriod(field+".planned_period", p.GetPlannedPeriod()), field+".planned_period", invalid...)
	wantFieldError(t, "checkPeriod", checkPeriod(field+".actual_period", p.GetActualPeriod()), field+".actual_period", invalid...)
	if update != nil {
		stored := normalizePlan(basePlan())
		if err := applyMask(stored, p, update.GetUpdateMask(), store.PlanMutableFields, "plan"); err != nil {
			wantFieldError(t, "applyMask", err, "", invalid...)
			return
		}
		for _, c := range diffPlans(normalizePlan(basePlan()), stored) {
			if c.GetField() == "" {
				t.Fatalf("diff names no field: %v", c)
			}
		}
		changedFields(normalizePlan(basePlan()), stored)
	}
}

// fuzzIngest is a store opened once per fuzzing process, with agencies and a
// dataset, and the handlers on it.
type fuzzIngest struct {
	ctx       context.Context
	store     *store.Store
	srv       *Server
	referrals *referralService
	datasets  *datasetService
	// first records, per request id, the referral a batch stored first, so
	// that a later duplicate is checked against it.
	first map[string]*exchangev1.Referral
}

// fuzzDir is a directory for a fuzzing store: in memory (/dev/shm) where
// there is one, because every accepted write is fsynced and fuzzing is
// not about durability; else the test's temporary directory.
func fuzzDir(f *testing.F) string {
	if dir, err := os.MkdirTemp("/dev/shm", "exchange-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return f.TempDir()
}

func openIngest(f *testing.F) *fuzzIngest {
	st, err := store.Open(filepath.Join(fuzzDir(f), "exchange.db"), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	ctx := context.Background()
	sec := store.Op{Actor: "secretariat", Method: "fuzz"}
	var ilo *exchangev1.Agency
	for _, id := range []string{"ilo", "iom", "unicef", "suspended-ngo"} {
		a, err := st.CreateAgency(ctx, sec, id, &exchangev1.Agency{DisplayName: id, Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY})
		if err != nil {
			f.Fatal(err)
		}
		if id == "ilo" {
			ilo = a
		}
	}
	if _, err := st.UpdateAgency(ctx, sec, "agencies/suspended-ngo", "", func(a *exchangev1.Agency) error {
		a.State = exchangev1.AgencyState_AGENCY_STATE_SUSPENDED
		return nil
	}); err != nil {
		f.Fatal(err)
	}
	op := store.Op{Actor: "agencies/ilo", Method: "fuzz"}
	if _, err := st.CreateDataset(ctx, op, "returns", returnsDataset("agencies/iom")); err != nil {
		f.Fatal(err)
	}
	if _, err := st.UpdateDataset(ctx, op, badDataset, "", func(d *exchangev1.Dataset) error {
		d.Locks = append(d.Locks, &exchangev1.PeriodLock{Period: "2026-06", LockedBy: "agencies/ilo"})
		return nil
	}); err != nil {
		f.Fatal(err)
	}
	srv := fuzzServer(f, st)
	caller := Caller{Identity: pki.Agency("ilo"), Agency: ilo}
	return &fuzzIngest{
		ctx:       withCaller(context.Background(), caller),
		store:     st,
		srv:       srv,
		referrals: &referralService{server: srv, store: st, deadlines: DefaultAckDeadlines, now: time.Now, heartbeat: time.Second},
		datasets:  &datasetService{server: srv, store: st},
		first:     map[string]*exchangev1.Referral{},
	}
}

func (in *fuzzIngest) call(method string) context.Context {
	return context.WithValue(in.ctx, methodKey{}, method)
}

// referralInput is what a sender controls of a referral: the referral
// without its output-only fields.
func referralInput(r *exchangev1.Referral) *exchangev1.Referral {
	r = proto.Clone(r).(*exchangev1.Referral)
	r.Name, r.Sender, r.State, r.History, r.Rejection, r.Outcome = "", "", 0, nil, nil, nil
	r.ForwardedFrom, r.ForwardedTo, r.Overdue, r.DetailsWithheld = "", nil, false, false
	r.CreateTime, r.UpdateTime, r.Etag, r.RequestId = nil, nil, "", ""
	if r.Consent != nil {
		r.Consent.RevokeTime = nil
	}
	return r
}

var referralNameShape = regexp.MustCompile(`^referrals/[0-9a-z]{26}$`)

// FuzzIngestReferrals pushes decoded batches of referrals through
// validation and BatchCreateReferrals into a real store, then reads back
// every referral accepted: it must be what was sent, with the output-only
// fields the exchange's own. Every result must be accepted, a duplicate
// of an earlier request id, or rejected with a reason; never INTERNAL.
func FuzzIngestReferrals(f *testing.F) {
	seed := func(reqs ...*exchangev1.CreateReferralRequest) {
		b, err := proto.Marshal(&exchangev1.BatchCreateReferralsRequest{Requests: reqs})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	valid := func(id string, mutate func(r *exchangev1.Referral)) *exchangev1.CreateReferralRequest {
		r := baseReferral()
		if mutate != nil {
			mutate(r)
		}
		return &exchangev1.CreateReferralRequest{Referral: r, RequestId: id}
	}
	seed(valid("seed-1", nil))
	seed(valid("seed-2", nil), valid("seed-3", func(r *exchangev1.Referral) {
		r.Receiver, r.Consent.ReceivingAgency = "agencies/unicef", "agencies/unicef"
	}))
	seed(valid("seed-1", nil), valid("seed-4", func(r *exchangev1.Referral) { r.Location.Subdivision = "KH-99" }))
	seed(valid("seed-5", func(r *exchangev1.Referral) {
		r.Receiver, r.Consent.ReceivingAgency = "agencies/suspended-ngo", "agencies/suspended-ngo"
	}))
	seed(valid("seed-6", func(r *exchangev1.Referral) { r.Consent.ReceivingAgency = "agencies/unicef" }))
	seed(valid("seed-7", func(r *exchangev1.Referral) {
		r.Name, r.Sender, r.State, r.Etag, r.ForwardedFrom = "referrals/"+badID, "agencies/iom", exchangev1.ReferralState_REFERRAL_STATE_COMPLETED, "forged", "referrals/"+badID
		r.Overdue, r.DetailsWithheld, r.ForwardedTo = true, true, []string{"referrals/" + badID}
	}))
	seed(valid("seed-8", func(r *exchangev1.Referral) { r.SealedDetails = nil }), valid("seed-8", nil))
	seed(valid("seed-9", func(r *exchangev1.Referral) {
		r.Subject = nil
		r.SenderCaseReference = ""
		r.Location = &exchangev1.LocationRef{Country: "TH"}
	}))
	seed()

	in := openIngest(f)
	method := exchangev1.ReferralService_BatchCreateReferrals_FullMethodName
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(exchangev1.BatchCreateReferralsRequest)
		if err := proto.Unmarshal(data, req); err != nil {
			return
		}
		if !checkValidationAnswer(t, in.srv, req) {
			return
		}
		resp, err := in.referrals.BatchCreateReferrals(in.call(method), req)
		if err != nil {
			t.Fatalf("BatchCreateReferrals failed as a whole: %v", toStatus(in.ctx, in.srv.log, method, err))
		}
		if len(resp.GetResults()) != len(req.GetRequests()) {
			t.Fatalf("%d results for %d requests", len(resp.GetResults()), len(req.GetRequests()))
		}
		for i, res := range resp.GetResults() {
			sent := req.GetRequests()[i]
			if res.GetIndex() != int32(i) || res.GetRequestId() != sent.GetRequestId() {
				t.Fatalf("result %d is %v", i, res)
			}
			switch res.GetStatus() {
			case exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_REJECTED:
				if !slices.Contains([]string{"INVALID_ARGUMENT", "FAILED_PRECONDITION"}, res.GetCode()) || res.GetMessage() == "" {
					t.Fatalf("request %d rejected with %q: %q %v", i, res.GetCode(), res.GetMessage(), res.GetViolations())
				}
				continue
			case exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_ACCEPTED, exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE:
			default:
				t.Fatalf("request %d has status %v", i, res.GetStatus())
			}
			stored, err := in.store.GetReferral(context.Background(), res.GetReferral())
			if err != nil {
				t.Fatalf("request %d: %s was acknowledged but cannot be read: %v", i, res.GetReferral(), err)
			}
			want := referralInput(sent.GetReferral())
			if res.GetStatus() == exchangev1.ReferralPushStatus_REFERRAL_PUSH_STATUS_DUPLICATE {
				first, ok := in.first[sent.GetRequestId()]
				if !ok {
					t.Fatalf("request %d is a duplicate of request id %q, which this process never stored", i, sent.GetRequestId())
				}
				want = first
			} else if _, dup := in.first[sent.GetRequestId()]; dup {
				t.Fatalf("request id %q stored twice", sent.GetRequestId())
			}
			if got := referralInput(stored); !proto.Equal(got, want) {
				t.Fatalf("request %d: stored referral differs from the one sent\nsent   %v\nstored %v", i, want, got)
			}
			if !referralNameShape.MatchString(stored.GetName()) || stored.GetName() != res.GetReferral() || stored.GetSender() != "agencies/ilo" ||
				stored.GetState() != exchangev1.ReferralState_REFERRAL_STATE_REQUESTED || len(stored.GetHistory()) != 1 ||
				stored.GetRejection() != nil || stored.GetOutcome() != nil || stored.GetForwardedFrom() != "" || len(stored.GetForwardedTo()) != 0 ||
				stored.GetOverdue() || stored.GetDetailsWithheld() || stored.GetConsent().GetRevokeTime() != nil ||
				stored.GetCreateTime() == nil || stored.GetEtag() == "" {
				t.Fatalf("request %d: output-only fields of the stored referral are not the exchange's own: %v", i, stored)
			}
			in.first[sent.GetRequestId()] = referralInput(stored)
		}
	})
}

// rowDeletedIsKept: the store once kept the output-only Row.deleted of a
// row sent to WriteDatasetRows, storing an accepted write as a tombstone.
// Fixed (the store clears it); false makes FuzzIngestRows send the flag and
// check that the write is stored as a live row.
const rowDeletedIsKept = false

// FuzzIngestRows writes decoded rows through validation and
// WriteDatasetRows into a real store, then pulls back what the write
// changed: every accepted write must be stored exactly as sent (a current
// row, or for a deletion a tombstone), every rejected one must say why,
// and nothing may fail as a whole or with INTERNAL.
func FuzzIngestRows(f *testing.F) {
	seed := func(writes ...*exchangev1.RowWrite) {
		b, err := proto.Marshal(&exchangev1.WriteDatasetRowsRequest{Dataset: badDataset, Writes: writes})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	w := func(r *exchangev1.Row) *exchangev1.RowWrite { return &exchangev1.RowWrite{Row: r} }
	full := row("2026-01", "KH-12", "female", 3)
	full.Categories["age_group"] = "18+"
	full.Values["spend"] = &exchangev1.Value{Kind: &exchangev1.Value_DecimalValue{DecimalValue: 12.5}}
	full.Values["note"] = &exchangev1.Value{Kind: &exchangev1.Value_TextValue{TextValue: "ok"}}
	full.Values["reported_on"] = &exchangev1.Value{Kind: &exchangev1.Value_DateValue{DateValue: date(2026, 2, 1)}}
	full.Values["verified"] = &exchangev1.Value{Kind: &exchangev1.Value_BoolValue{BoolValue: true}}
	full.Values["channel"] = &exchangev1.Value{Kind: &exchangev1.Value_CodeValue{CodeValue: "hotline"}}
	seed(w(full))
	seed(w(row("2026-01", "KH-12", "male", 1)), w(row("2026-02", "KH-2", "female", 2)), w(row("2026-01", "KH-12", "male", 5)))
	seed(w(row("2026-01", "KH-12", "male", 1)), &exchangev1.RowWrite{Row: row("2026-01", "KH-12", "male", 0), Delete: true})
	seed(&exchangev1.RowWrite{Row: row("2025-01", "KH-12", "male", 0), Delete: true})
	seed(w(row("2026-06", "KH-12", "female", 4)), w(row("2026-13", "KH-99", "unknown", -1)))
	empty := row("2026-03", "KH-12", "female", 1)
	empty.Categories["age_group"] = ""
	seed(w(empty), w(row("2026-03", "KH-12", "female", 2)))
	forged := row("2026-04", "KH-12", "female", 1)
	forged.Contributor, forged.Revision = "agencies/iom", 1<<40
	seed(w(forged))
	seed()

	in := openIngest(f)
	method := exchangev1.DatasetService_WriteDatasetRows_FullMethodName
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(exchangev1.WriteDatasetRowsRequest)
		if err := proto.Unmarshal(data, req); err != nil {
			return
		}
		req.Dataset = badDataset
		if rowDeletedIsKept {
			for _, w := range req.GetWrites() {
				if w.GetRow() != nil {
					w.Row.Deleted = false
				}
			}
		}
		if !checkValidationAnswer(t, in.srv, req) {
			return
		}
		// The rows as stored before the write: a row written again
		// exactly as stored is accepted and changes nothing.
		before, err := in.store.PullDatasetRows(context.Background(), store.RowQuery{Dataset: badDataset, Limit: 20000})
		if err != nil || before.Next != nil {
			t.Fatalf("pull before: %v (more: %v)", err, before.Next != nil)
		}
		storedBefore := map[string]*exchangev1.Row{}
		for _, r := range before.Rows {
			storedBefore[string(store.RowKey(r))] = r
		}
		resp, err := in.datasets.WriteDatasetRows(in.call(method), req)
		if err != nil {
			t.Fatalf("WriteDatasetRows failed as a whole: %v", toStatus(in.ctx, in.srv.log, method, err))
		}
		if len(resp.GetResults()) != len(req.GetWrites()) || int(resp.GetAccepted()+resp.GetRejected()) != len(req.GetWrites()) ||
			(resp.GetAccepted() == 0) != (resp.GetRevision() == 0) {
			t.Fatalf("response does not add up for %d writes: %v", len(req.GetWrites()), resp)
		}
		// What each key must hold after the write: the last accepted
		// write of it wins. unchangedAt is the latest revision of the
		// accepted rows that were already stored as written.
		want := map[string]*exchangev1.RowWrite{}
		var unchangedAt int64
		for i, res := range resp.GetResults() {
			if res.GetIndex() != int32(i) {
				t.Fatalf("result %d has index %d", i, res.GetIndex())
			}
			if !res.GetAccepted() {
				if !slices.Contains([]string{"INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND"}, res.GetCode()) || len(res.GetViolations()) == 0 {
					t.Fatalf("write %d rejected with %q %v", i, res.GetCode(), res.GetViolations())
				}
				for _, v := range res.GetViolations() {
					if !strings.HasPrefix(v.GetField(), fmt.Sprintf("writes[%d]", i)) {
						t.Fatalf("write %d: violation %v names another write", i, v)
					}
				}
				continue
			}
			w := proto.Clone(req.GetWrites()[i]).(*exchangev1.RowWrite)
			w.Row.Contributor = "agencies/ilo"
			key := string(store.RowKey(w.GetRow()))
			if old := storedBefore[key]; old != nil && !w.GetDelete() && !old.GetDeleted() {
				sent, kept := proto.Clone(w.GetRow()).(*exchangev1.Row), proto.Clone(old).(*exchangev1.Row)
				sent.Revision, sent.UpdateTime, sent.Deleted = 0, nil, false
				kept.Revision, kept.UpdateTime = 0, nil
				if proto.Equal(sent, kept) {
					unchangedAt = max(unchangedAt, old.GetRevision())
					continue
				}
			}
			want[key] = w
		}
		if resp.GetAccepted() == 0 {
			return
		}
		if len(want) == 0 {
			if resp.GetRevision() != unchangedAt {
				t.Fatalf("every accepted row was stored as written, at revisions up to %d, but the answer says %d", unchangedAt, resp.GetRevision())
			}
			return
		}
		page, err := in.store.PullDatasetRows(context.Background(), store.RowQuery{Dataset: badDataset, Since: resp.GetRevision() - 1, Limit: 20000})
		if err != nil || page.Next != nil {
			t.Fatalf("pull back: %v (more: %v)", err, page.Next != nil)
		}
		got := map[string]*exchangev1.Row{}
		for _, r := range page.Rows {
			got[string(store.RowKey(r))] = r
		}
		if len(got) != len(want) {
			t.Fatalf("the write changed %d rows, want %d", len(got), len(want))
		}
		for key, w := range want {
			r, ok := got[key]
			switch {
			case !ok:
				t.Fatalf("accepted row %q is not stored", key)
			case r.GetRevision() != resp.GetRevision() || r.GetUpdateTime() == nil || r.GetContributor() != "agencies/ilo":
				t.Fatalf("row %q stored with revision %d (want %d), contributor %q", key, r.GetRevision(), resp.GetRevision(), r.GetContributor())
			case w.GetDelete():
				if !r.GetDeleted() {
					t.Fatalf("deleted row %q is not a tombstone: %v", key, r)
				}
			default:
				sent := proto.Clone(w.GetRow()).(*exchangev1.Row)
				stored := proto.Clone(r).(*exchangev1.Row)
				sent.Revision, sent.UpdateTime = 0, nil
				stored.Revision, stored.UpdateTime = 0, nil
				if stored.GetDeleted() || !proto.Equal(sent, stored) {
					t.Fatalf("row %q stored differs from the one sent\nsent   %v\nstored %v", key, sent, stored)
				}
			}
		}
	})
}
