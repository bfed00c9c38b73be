package client

import (
	"context"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// RetryPolicy says whether the client may repeat a call that failed with
// UNAVAILABLE.
type RetryPolicy int

const (
	// NoRetry means the call is made once. It applies to updates, deletes
	// and state verbs, whose repetition could act twice or fail
	// confusingly, and to every method missing from the table.
	NoRetry RetryPolicy = iota
	// RetryAlways means the call has no effect on the server (Get, List)
	// and is retried on UNAVAILABLE.
	RetryAlways
	// RetryWithRequestID means the call creates something and is retried on
	// UNAVAILABLE only when its request carries a request_id (for a batch,
	// when each of its requests does), which makes the server return the
	// first result instead of creating twice. The typed client always sets
	// them.
	RetryWithRequestID
	// RetryIdempotent means the call changes something and carries no
	// request_id, but making it again leaves the same state as making it
	// once, so it is retried on UNAVAILABLE. It applies to
	// WriteDatasetRows, whose writes are upserts and deletions keyed by
	// row: a repeat rewrites the same values.
	RetryIdempotent
	// RetryIfValidateOnly means the call is retried on UNAVAILABLE only
	// when its request sets validate_only, which makes it a read. It
	// applies to ApplyPlans and ImportIatiActivities: they are
	// declarative, so a repeat leaves the same plans as one call, but
	// their answer is the diff of what the call changed, and the repeat
	// of a call whose answer was lost would report as unchanged what the
	// lost call changed (and `plans apply` exit 0, "nothing changed").
	// The caller sees UNAVAILABLE instead and may run the apply again,
	// knowing the first may have taken effect.
	RetryIfValidateOnly
)

// String returns the policy's name.
func (p RetryPolicy) String() string {
	switch p {
	case NoRetry:
		return "no-retry"
	case RetryAlways:
		return "retry-always"
	case RetryWithRequestID:
		return "retry-with-request-id"
	case RetryIdempotent:
		return "retry-idempotent"
	case RetryIfValidateOnly:
		return "retry-if-validate-only"
	default:
		return "unknown"
	}
}

// maxAttempts is how often a retried call is tried in all, the first try
// included.
const maxAttempts = 4

// retryBackoff is the wait before the first retry; it doubles before each
// further retry, with 20% jitter.
const retryBackoff = 100 * time.Millisecond

// retryPolicies is the explicit retry decision for every method of every
// service the client knows. A test fails when a service gains a method that
// is missing here.
var retryPolicies = map[string]RetryPolicy{
	exchangev1.DirectoryService_GetAgency_FullMethodName:        RetryAlways,
	exchangev1.DirectoryService_ListAgencies_FullMethodName:     RetryAlways,
	exchangev1.DirectoryService_CreateAgency_FullMethodName:     RetryWithRequestID,
	exchangev1.DirectoryService_UpdateAgency_FullMethodName:     NoRetry,
	exchangev1.DirectoryService_SuspendAgency_FullMethodName:    NoRetry,
	exchangev1.DirectoryService_ReactivateAgency_FullMethodName: NoRetry,

	// Setting a key is idempotent: a repeat after a lost answer sets the
	// same key again, which changes nothing.
	exchangev1.DirectoryService_SetAgencyEncryptionKey_FullMethodName: RetryIdempotent,

	exchangev1.DirectoryService_GetFocalPoint_FullMethodName:    RetryAlways,
	exchangev1.DirectoryService_ListFocalPoints_FullMethodName:  RetryAlways,
	exchangev1.DirectoryService_CreateFocalPoint_FullMethodName: RetryWithRequestID,
	exchangev1.DirectoryService_UpdateFocalPoint_FullMethodName: NoRetry,
	exchangev1.DirectoryService_DeleteFocalPoint_FullMethodName: NoRetry,

	exchangev1.DirectoryService_GetWorkingGroup_FullMethodName:    RetryAlways,
	exchangev1.DirectoryService_ListWorkingGroups_FullMethodName:  RetryAlways,
	exchangev1.DirectoryService_CreateWorkingGroup_FullMethodName: RetryWithRequestID,
	exchangev1.DirectoryService_UpdateWorkingGroup_FullMethodName: NoRetry,
	exchangev1.DirectoryService_DeleteWorkingGroup_FullMethodName: NoRetry,

	exchangev1.DirectoryService_GetLocation_FullMethodName:   RetryAlways,
	exchangev1.DirectoryService_ListLocations_FullMethodName: RetryAlways,

	exchangev1.CertificateService_IssueCertificate_FullMethodName:  RetryWithRequestID,
	exchangev1.CertificateService_GetCertificate_FullMethodName:    RetryAlways,
	exchangev1.CertificateService_ListCertificates_FullMethodName:  RetryAlways,
	exchangev1.CertificateService_RevokeCertificate_FullMethodName: NoRetry,

	exchangev1.ReferralService_CreateReferral_FullMethodName:       RetryWithRequestID,
	exchangev1.ReferralService_BatchCreateReferrals_FullMethodName: RetryWithRequestID,
	exchangev1.ReferralService_ForwardReferral_FullMethodName:      RetryWithRequestID,
	exchangev1.ReferralService_GetReferral_FullMethodName:          RetryAlways,
	exchangev1.ReferralService_ListReferrals_FullMethodName:        RetryAlways,
	exchangev1.ReferralService_SuggestRecipients_FullMethodName:    RetryAlways,
	// A stream, which the retry interceptor does not handle: it is a read,
	// and ReferralClient.Watch reconnects and resumes it itself.
	exchangev1.ReferralService_WatchReferrals_FullMethodName:        RetryAlways,
	exchangev1.ReferralService_GetReferralStatistics_FullMethodName: RetryAlways,
	exchangev1.ReferralService_AcknowledgeReferral_FullMethodName:   NoRetry,
	exchangev1.ReferralService_AcceptReferral_FullMethodName:        NoRetry,
	exchangev1.ReferralService_RejectReferral_FullMethodName:        NoRetry,
	exchangev1.ReferralService_StartReferral_FullMethodName:         NoRetry,
	exchangev1.ReferralService_CompleteReferral_FullMethodName:      NoRetry,
	exchangev1.ReferralService_CancelReferral_FullMethodName:        NoRetry,
	exchangev1.ReferralService_RevokeReferralConsent_FullMethodName: NoRetry,
	// A verb like the others: made once (read the referral again after
	// UNAVAILABLE to see whether the details are gone).
	exchangev1.ReferralService_EraseReferralDetails_FullMethodName: NoRetry,

	// Audit and admin reads. A backup is a stream of one snapshot: a broken
	// one is started again by the caller, never resumed.
	exchangev1.AuditService_ListAuditEntries_FullMethodName: RetryAlways,
	exchangev1.AuditService_GetAuditHead_FullMethodName:     RetryAlways,
	exchangev1.AdminService_GetStorageStatus_FullMethodName: RetryAlways,
	exchangev1.AdminService_Backup_FullMethodName:           NoRetry,

	exchangev1.DatasetService_CreateDataset_FullMethodName: RetryWithRequestID,
	exchangev1.DatasetService_GetDataset_FullMethodName:    RetryAlways,
	exchangev1.DatasetService_ListDatasets_FullMethodName:  RetryAlways,
	exchangev1.DatasetService_UpdateDataset_FullMethodName: NoRetry,
	// Not idempotent by request id (it has none) but by nature: every
	// write is an upsert or a deletion keyed by the row (period, location,
	// categories, and the caller as contributor), so a repeat after a
	// lost answer leaves the rows exactly as one call would. Only the
	// results of the repeat differ (see DatasetClient.Write).
	exchangev1.DatasetService_WriteDatasetRows_FullMethodName: RetryIdempotent,
	// A stream, which the retry interceptor does not handle: it is a
	// read, and DatasetClient.Pull resumes it from the last resume_token.
	exchangev1.DatasetService_PullDatasetRows_FullMethodName:        RetryAlways,
	exchangev1.DatasetService_AggregateDatasetRows_FullMethodName:   RetryAlways,
	exchangev1.DatasetService_GetDatasetCompleteness_FullMethodName: RetryAlways,
	// State verbs: a repeat after a lost answer fails with
	// FAILED_PRECONDITION (already locked, not locked).
	exchangev1.DatasetService_LockDatasetPeriod_FullMethodName:   NoRetry,
	exchangev1.DatasetService_UnlockDatasetPeriod_FullMethodName: NoRetry,
	// A stream: DatasetClient.WatchRows reconnects and resumes it.
	exchangev1.DatasetService_WatchDatasetRows_FullMethodName: RetryAlways,

	exchangev1.PlanService_GetPlan_FullMethodName:          RetryAlways,
	exchangev1.PlanService_ListPlans_FullMethodName:        RetryAlways,
	exchangev1.PlanService_CreatePlan_FullMethodName:       RetryWithRequestID,
	exchangev1.PlanService_UpdatePlan_FullMethodName:       NoRetry,
	exchangev1.PlanService_CancelPlan_FullMethodName:       NoRetry,
	exchangev1.PlanService_ListPlanVersions_FullMethodName: RetryAlways,
	exchangev1.PlanService_DiffPlanVersions_FullMethodName: RetryAlways,
	// Declarative, and so safe to repeat as far as the stored plans go,
	// but the answer of a repeat misreports what a lost first call did:
	// retried only as a dry run (see RetryIfValidateOnly).
	exchangev1.PlanService_ApplyPlans_FullMethodName:           RetryIfValidateOnly,
	exchangev1.PlanService_ImportIatiActivities_FullMethodName: RetryIfValidateOnly,
	exchangev1.PlanService_FindOverlaps_FullMethodName:         RetryAlways,
	exchangev1.PlanService_FindGaps_FullMethodName:             RetryAlways,
	exchangev1.PlanService_GetCoverage_FullMethodName:          RetryAlways,
	// A stream: PlanClient.Watch reconnects and resumes it.
	exchangev1.PlanService_WatchPlans_FullMethodName: RetryAlways,

	exchangev1.ConsultantService_GetConsultant_FullMethodName:    RetryAlways,
	exchangev1.ConsultantService_ListConsultants_FullMethodName:  RetryAlways,
	exchangev1.ConsultantService_CreateConsultant_FullMethodName: RetryWithRequestID,
	exchangev1.ConsultantService_UpdateConsultant_FullMethodName: NoRetry,
	exchangev1.ConsultantService_EraseConsultant_FullMethodName:  NoRetry,
	exchangev1.ConsultantService_CreateEngagement_FullMethodName: RetryWithRequestID,
	exchangev1.ConsultantService_ListEngagements_FullMethodName:  RetryAlways,
	exchangev1.ConsultantService_GetEngagement_FullMethodName:    RetryAlways,
	// Cancelling twice fails (FAILED_PRECONDITION): not retried blindly.
	exchangev1.ConsultantService_CancelEngagement_FullMethodName: NoRetry,
}

// MethodRetryPolicy returns the retry policy of a full gRPC method name such
// as "/alltogether.exchange.v1.DirectoryService/GetAgency", and false (with
// NoRetry) for a method the client does not know.
func MethodRetryPolicy(fullMethod string) (RetryPolicy, bool) {
	p, ok := retryPolicies[fullMethod]
	return p, ok
}

// requestIDCarrier is a request with an idempotency key.
type requestIDCarrier interface {
	GetRequestId() string
}

// mayRetry reports whether a call of method with req may be repeated.
func mayRetry(method string, req any) bool {
	switch p, _ := MethodRetryPolicy(method); p {
	case RetryAlways, RetryIdempotent:
		return true
	case RetryWithRequestID:
		return carriesRequestIDs(req)
	case RetryIfValidateOnly:
		r, ok := req.(validateOnlyCarrier)
		return ok && r.GetValidateOnly()
	default:
		return false
	}
}

// validateOnlyCarrier is a request that can ask for a dry run.
type validateOnlyCarrier interface {
	GetValidateOnly() bool
}

// carriesRequestIDs reports whether req has a non-empty request_id or, for
// a batch (a request whose "requests" field lists requests), whether it has
// requests and every one of them has a non-empty request_id.
func carriesRequestIDs(req any) bool {
	if r, ok := req.(requestIDCarrier); ok {
		return r.GetRequestId() != ""
	}
	m, ok := req.(proto.Message)
	if !ok {
		return false
	}
	msg := m.ProtoReflect()
	fd := msg.Descriptor().Fields().ByName("requests")
	if fd == nil || !fd.IsList() || fd.Message() == nil {
		return false
	}
	list := msg.Get(fd).List()
	if list.Len() == 0 {
		return false
	}
	for i := range list.Len() {
		item, ok := list.Get(i).Message().Interface().(requestIDCarrier)
		if !ok || item.GetRequestId() == "" {
			return false
		}
	}
	return true
}

// retryPolicyInterceptor switches the retry interceptor, which sits after
// it in the chain and retries nothing by default, on for the calls that
// mayRetry allows.
func retryPolicyInterceptor(attempts uint) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if mayRetry(method, req) {
			opts = append(opts, retry.WithMax(attempts))
		} else {
			opts = append(opts, retry.Disable())
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// retryInterceptor retries on UNAVAILABLE with exponential backoff, for the
// calls retryPolicyInterceptor enables.
func retryInterceptor() grpc.UnaryClientInterceptor {
	return retry.UnaryClientInterceptor(
		retry.WithMax(0),
		retry.WithCodes(codes.Unavailable),
		retry.WithBackoff(retry.BackoffExponentialWithJitter(retryBackoff, 0.2)),
		retry.WithOnRetryCallback(func(context.Context, uint, error) {}),
	)
}
