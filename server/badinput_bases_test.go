package server

import (
	"sync"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/seal"
)

// The base requests of the malformed-request test: one valid request per
// method, as rich as the rules allow (every optional message and list
// filled), so that breaking one rule makes the only violation and every
// rule is reached. TestMalformedRequests fails when a registered method
// has no base here, and when a rule reachable from a method's request type
// is not reached from its base.

// badID is a well-formed id of 26 characters that no resource has.
const badID = "0123456789abcdefghjkmnpqrs"

// bad prefixes the ids of the fixture the test creates.
const (
	badAgency  = "ilo"
	badDataset = "agencies/ilo/datasets/returns"
	badGroup   = "workingGroups/un-wg"
)

func baseLocation() *exchangev1.LocationRef {
	return &exchangev1.LocationRef{Country: "KH", Subdivision: "KH-12", Area: "Chamkar Mon"}
}

func basePeriod() *exchangev1.DatePeriod {
	return &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)}
}

func baseAudience() *exchangev1.Audience {
	return &exchangev1.Audience{Agencies: []string{"agencies/iom"}, WorkingGroups: []string{badGroup}}
}

func baseConsent(receiver string) *exchangev1.Consent {
	return &exchangev1.Consent{
		GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_GUARDIAN, GivenTime: timestamppb.New(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)),
		ReceivingAgency: receiver, Services: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING},
		OverrideReason: "",
	}
}

func baseReferral() *exchangev1.Referral {
	r := newReferral("iom")
	r.Subject.Age = proto.Int32(16)
	r.Subject.CurrentLocation = baseLocation()
	r.Location = baseLocation()
	r.Etag = "etag"
	// Output-only, ignored on create, but validated when sent.
	r.Rejection = &exchangev1.Rejection{Reason: exchangev1.RejectionReason_REJECTION_REASON_NO_CAPACITY, Details: "full"}
	r.Outcome = &exchangev1.Outcome{ServicesDelivered: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING}, Reason: "done"}
	r.History = []*exchangev1.Transition{{Actor: "agencies/ilo", ToState: exchangev1.ReferralState_REFERRAL_STATE_REQUESTED, Reason: "referred"}}
	r.ForwardedTo = []string{"referrals/forwarded"}
	return r
}

func baseAgency() *exchangev1.Agency {
	return &exchangev1.Agency{
		Name: "agencies/" + badAgency, DisplayName: "International Labour Organization", ShortName: "ILO",
		Kind: exchangev1.AgencyKind_AGENCY_KIND_UN_AGENCY, Parent: "agencies/iom",
		Countries: []string{"KH"}, Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION},
		Coverage: []*exchangev1.LocationRef{baseLocation()}, Website: "https://www.ilo.org",
		PublicKeys: []*exchangev1.PublicKey{{KeyId: "2026-signing", Pem: "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"}},
		Etag:       "etag",
		// Output-only, ignored on create and update, but validated when sent.
		EncryptionKey:          &exchangev1.EncryptionKey{Recipient: badRecipient(), Fingerprint: "AB12-CD34-EF56-7890-AB12-CD34-EF56-7890", CreateTime: badSince},
		PreviousEncryptionKeys: []*exchangev1.EncryptionKey{{Fingerprint: "0000-1111-2222-3333-4444-5555-6666-7777", CreateTime: badSince}},
	}
}

// badRecipient is a valid agency encryption key, made once.
var badRecipient = sync.OnceValue(func() string {
	id, err := seal.GenerateIdentity()
	if err != nil {
		panic(err)
	}
	return id.Recipient().String()
})

func baseFocalPoint() *exchangev1.FocalPoint {
	return &exchangev1.FocalPoint{
		Name: "agencies/ilo/focalPoints/" + badID, DisplayName: "Dara Sok", Topic: "referrals", Role: "Case manager",
		Email: "dara@ilo.org", Phone: "+855 12 345 678", Tenure: basePeriod(), Etag: "etag",
	}
}

func baseWorkingGroup() *exchangev1.WorkingGroup {
	return &exchangev1.WorkingGroup{
		Name: badGroup, DisplayName: "UN Working Group", Description: "Coordination",
		Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP,
		Members: []*exchangev1.Membership{
			{Agency: "agencies/ilo", Role: exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER},
			{Agency: "agencies/iom", Role: exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER},
		},
		Etag: "etag",
	}
}

func baseDataset() *exchangev1.Dataset {
	return &exchangev1.Dataset{
		Name: badDataset, Title: "Returned victims assisted", Description: "By province and sex",
		Contributors: []string{"agencies/iom"}, ContributorGroups: []string{badGroup}, Audience: baseAudience(),
		PublicAggregates: true, SuppressionThreshold: 5, PeriodType: exchangev1.PeriodType_PERIOD_TYPE_MONTH,
		Schema: &exchangev1.DatasetSchema{
			LocationLevel: exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE, LocationHxl: "#adm1+code",
			Categories: []*exchangev1.Category{{Key: "sex", Title: "Sex", Values: []string{"female", "male"}, Required: true, Hxl: "#sex"}},
			Measures: []*exchangev1.Measure{
				{Key: "channel", Title: "Channel", Type: exchangev1.MeasureType_MEASURE_TYPE_CODE, Codes: []string{"hotline", "outreach"}, Hxl: "#channel"},
				{Key: "cases", Type: exchangev1.MeasureType_MEASURE_TYPE_INTEGER, Required: true, Min: ptr(0.0)},
			},
		},
		ExpectedLocations: []string{"KH-12"},
		Etag:              "etag",
		// Output-only, ignored, but bounded when sent.
		Locks:       []*exchangev1.PeriodLock{{Period: "2026-01", LockedBy: "agencies/ilo"}},
		LockHistory: []*exchangev1.PeriodLockEvent{{Period: "2026-01", Locked: true, Actor: "agencies/ilo"}},
	}
}

func baseRow() *exchangev1.Row {
	return &exchangev1.Row{Period: "2026-01", Location: "KH-12", Categories: map[string]string{"sex": "female"},
		Values: map[string]*exchangev1.Value{"cases": intValue(3),
			"reported_on": {Kind: &exchangev1.Value_DateValue{DateValue: date(2026, 2, 1)}}}}
}

func basePlan() *exchangev1.Plan {
	return &exchangev1.Plan{
		Name: "agencies/ilo/plans/" + badID, ExternalId: "KH-2026-001", Title: "Safe migration", Description: "Village sessions",
		Stage: exchangev1.PlanStage_PLAN_STAGE_CONCEPT, Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION},
		Locations: []*exchangev1.LocationRef{baseLocation()}, PlannedPeriod: basePeriod(), ActualPeriod: basePeriod(),
		Budget: &exchangev1.PlanBudget{CurrencyCode: "USD", TotalAmount: "1000.5", Lines: []*exchangev1.PlanBudgetLine{
			{FiscalYear: "2026", Period: basePeriod(), Amount: "1000.5", Status: exchangev1.PlanBudgetStatus_PLAN_BUDGET_STATUS_INDICATIVE},
		}},
		Partners: []*exchangev1.PlanPartner{{Agency: "agencies/iom", DisplayName: "IOM", IatiRef: "XM-DAC-47066",
			Roles: []exchangev1.PlanPartnerRole{exchangev1.PlanPartnerRole_PLAN_PARTNER_ROLE_IMPLEMENTING}}},
		TargetGroups: []string{"returnee women"}, Audience: baseAudience(), Tags: []string{"phase-2"}, Etag: "etag",
	}
}

func badMask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

var badSince = timestamppb.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

// badInputBases has a valid base request for every method the server
// registers.
var badInputBases = map[string]func() proto.Message{
	exchangev1.DirectoryService_GetAgency_FullMethodName: func() proto.Message {
		return &exchangev1.GetAgencyRequest{Name: "agencies/ilo"}
	},
	exchangev1.DirectoryService_ListAgencies_FullMethodName: func() proto.Message {
		return &exchangev1.ListAgenciesRequest{PageSize: 10, Country: "KH", Niche: exchangev1.Niche_NICHE_PREVENTION, Subdivision: "KH-12",
			State: exchangev1.AgencyState_AGENCY_STATE_ACTIVE}
	},
	exchangev1.DirectoryService_CreateAgency_FullMethodName: func() proto.Message {
		return &exchangev1.CreateAgencyRequest{AgencyId: "new-agency", Agency: baseAgency(), RequestId: "create-agency-1"}
	},
	exchangev1.DirectoryService_UpdateAgency_FullMethodName: func() proto.Message {
		return &exchangev1.UpdateAgencyRequest{Agency: baseAgency(), UpdateMask: badMask("short_name")}
	},
	exchangev1.DirectoryService_SuspendAgency_FullMethodName: func() proto.Message {
		return &exchangev1.SuspendAgencyRequest{Name: "agencies/iom", Reason: "unpaid dues", Etag: "etag"}
	},
	exchangev1.DirectoryService_ReactivateAgency_FullMethodName: func() proto.Message {
		return &exchangev1.ReactivateAgencyRequest{Name: "agencies/iom", Etag: "etag"}
	},
	exchangev1.DirectoryService_SetAgencyEncryptionKey_FullMethodName: func() proto.Message {
		return &exchangev1.SetAgencyEncryptionKeyRequest{Name: "agencies/" + badAgency, Recipient: badRecipient()}
	},
	exchangev1.DirectoryService_GetFocalPoint_FullMethodName: func() proto.Message {
		return &exchangev1.GetFocalPointRequest{Name: "agencies/ilo/focalPoints/" + badID}
	},
	exchangev1.DirectoryService_ListFocalPoints_FullMethodName: func() proto.Message {
		return &exchangev1.ListFocalPointsRequest{Parent: "agencies/ilo", PageSize: 10, Topic: "referrals", ActiveOn: date(2026, 3, 1)}
	},
	exchangev1.DirectoryService_CreateFocalPoint_FullMethodName: func() proto.Message {
		return &exchangev1.CreateFocalPointRequest{Parent: "agencies/ilo", FocalPoint: baseFocalPoint(), RequestId: "fp-1"}
	},
	exchangev1.DirectoryService_UpdateFocalPoint_FullMethodName: func() proto.Message {
		return &exchangev1.UpdateFocalPointRequest{FocalPoint: baseFocalPoint(), UpdateMask: badMask("role")}
	},
	exchangev1.DirectoryService_DeleteFocalPoint_FullMethodName: func() proto.Message {
		return &exchangev1.DeleteFocalPointRequest{Name: "agencies/ilo/focalPoints/" + badID, Etag: "etag"}
	},
	exchangev1.DirectoryService_GetWorkingGroup_FullMethodName: func() proto.Message {
		return &exchangev1.GetWorkingGroupRequest{Name: badGroup}
	},
	exchangev1.DirectoryService_ListWorkingGroups_FullMethodName: func() proto.Message {
		return &exchangev1.ListWorkingGroupsRequest{PageSize: 10, Member: "agencies/ilo"}
	},
	exchangev1.DirectoryService_CreateWorkingGroup_FullMethodName: func() proto.Message {
		return &exchangev1.CreateWorkingGroupRequest{WorkingGroupId: "new-group", WorkingGroup: baseWorkingGroup(), RequestId: "wg-1"}
	},
	exchangev1.DirectoryService_UpdateWorkingGroup_FullMethodName: func() proto.Message {
		return &exchangev1.UpdateWorkingGroupRequest{WorkingGroup: baseWorkingGroup(), UpdateMask: badMask("description")}
	},
	exchangev1.DirectoryService_DeleteWorkingGroup_FullMethodName: func() proto.Message {
		return &exchangev1.DeleteWorkingGroupRequest{Name: badGroup, Etag: "etag"}
	},
	exchangev1.DirectoryService_GetLocation_FullMethodName: func() proto.Message {
		return &exchangev1.GetLocationRequest{Name: "locations/KH-12"}
	},
	exchangev1.DirectoryService_ListLocations_FullMethodName: func() proto.Message {
		return &exchangev1.ListLocationsRequest{PageSize: 10, Country: "KH"}
	},

	exchangev1.CertificateService_IssueCertificate_FullMethodName: func() proto.Message {
		return &exchangev1.IssueCertificateRequest{Subject: "agencies/ilo", CsrDer: []byte{0x30, 0x00}, ValidityDays: 30, RequestId: "cert-1"}
	},
	exchangev1.CertificateService_GetCertificate_FullMethodName: func() proto.Message {
		return &exchangev1.GetCertificateRequest{Name: "certificates/abc123"}
	},
	exchangev1.CertificateService_ListCertificates_FullMethodName: func() proto.Message {
		return &exchangev1.ListCertificatesRequest{PageSize: 10, Subject: "agencies/ilo"}
	},
	exchangev1.CertificateService_RevokeCertificate_FullMethodName: func() proto.Message {
		return &exchangev1.RevokeCertificateRequest{Name: "certificates/abc123", Reason: "rotated"}
	},

	exchangev1.ReferralService_CreateReferral_FullMethodName: func() proto.Message {
		return &exchangev1.CreateReferralRequest{Referral: baseReferral(), RequestId: "ref-1"}
	},
	exchangev1.ReferralService_BatchCreateReferrals_FullMethodName: func() proto.Message {
		return &exchangev1.BatchCreateReferralsRequest{Requests: []*exchangev1.CreateReferralRequest{{Referral: baseReferral(), RequestId: "batch-1"}}}
	},
	exchangev1.ReferralService_GetReferral_FullMethodName: func() proto.Message {
		return &exchangev1.GetReferralRequest{Name: "referrals/" + badID}
	},
	exchangev1.ReferralService_ListReferrals_FullMethodName: func() proto.Message {
		return &exchangev1.ListReferralsRequest{PageSize: 10, Direction: exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX,
			State: exchangev1.ReferralState_REFERRAL_STATE_REQUESTED, Niche: exchangev1.Niche_NICHE_PREVENTION,
			Counterparty: "agencies/iom", UpdatedSince: badSince, OverdueOnly: true}
	},
	exchangev1.ReferralService_WatchReferrals_FullMethodName: func() proto.Message {
		return &exchangev1.WatchReferralsRequest{StartRevision: 1}
	},
	exchangev1.ReferralService_AcknowledgeReferral_FullMethodName: func() proto.Message {
		return &exchangev1.AcknowledgeReferralRequest{Name: "referrals/" + badID, Etag: "etag"}
	},
	exchangev1.ReferralService_AcceptReferral_FullMethodName: func() proto.Message {
		return &exchangev1.AcceptReferralRequest{Name: "referrals/" + badID, Etag: "etag"}
	},
	exchangev1.ReferralService_RejectReferral_FullMethodName: func() proto.Message {
		return &exchangev1.RejectReferralRequest{Name: "referrals/" + badID, Etag: "etag",
			Rejection: &exchangev1.Rejection{Reason: exchangev1.RejectionReason_REJECTION_REASON_NO_CAPACITY, Details: "full"}}
	},
	exchangev1.ReferralService_StartReferral_FullMethodName: func() proto.Message {
		return &exchangev1.StartReferralRequest{Name: "referrals/" + badID, Etag: "etag"}
	},
	exchangev1.ReferralService_CompleteReferral_FullMethodName: func() proto.Message {
		return &exchangev1.CompleteReferralRequest{Name: "referrals/" + badID, Etag: "etag", Outcome: &exchangev1.Outcome{
			ServicesDelivered: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING}, Successful: true, Reason: "done"}}
	},
	exchangev1.ReferralService_CancelReferral_FullMethodName: func() proto.Message {
		return &exchangev1.CancelReferralRequest{Name: "referrals/" + badID, Etag: "etag", Reason: "sent twice"}
	},
	exchangev1.ReferralService_RevokeReferralConsent_FullMethodName: func() proto.Message {
		return &exchangev1.RevokeReferralConsentRequest{Name: "referrals/" + badID, Reason: "withdrawn"}
	},
	exchangev1.ReferralService_EraseReferralDetails_FullMethodName: func() proto.Message {
		return &exchangev1.EraseReferralDetailsRequest{Name: "referrals/" + badID, Reason: "erasure requested by the person", ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST}
	},
	exchangev1.ReferralService_ForwardReferral_FullMethodName: func() proto.Message {
		return &exchangev1.ForwardReferralRequest{Name: "referrals/" + badID, Receiver: "agencies/unicef",
			Service: &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING, Need: "counselling"},
			Urgency: exchangev1.Urgency_URGENCY_ROUTINE, Consent: baseConsent("agencies/unicef"), RequestId: "fwd-1", SealedDetails: testBlob()}
	},
	exchangev1.ReferralService_SuggestRecipients_FullMethodName: func() proto.Message {
		return &exchangev1.SuggestRecipientsRequest{Niche: exchangev1.Niche_NICHE_SHELTER, Subdivision: "KH-12"}
	},
	exchangev1.ReferralService_GetReferralStatistics_FullMethodName: func() proto.Message {
		return &exchangev1.GetReferralStatisticsRequest{}
	},

	exchangev1.DatasetService_CreateDataset_FullMethodName: func() proto.Message {
		return &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "new-dataset", Dataset: baseDataset(), RequestId: "ds-1"}
	},
	exchangev1.DatasetService_GetDataset_FullMethodName: func() proto.Message {
		return &exchangev1.GetDatasetRequest{Name: badDataset}
	},
	exchangev1.DatasetService_ListDatasets_FullMethodName: func() proto.Message {
		return &exchangev1.ListDatasetsRequest{PageSize: 10}
	},
	exchangev1.DatasetService_UpdateDataset_FullMethodName: func() proto.Message {
		return &exchangev1.UpdateDatasetRequest{Dataset: baseDataset(), UpdateMask: badMask("title")}
	},
	exchangev1.DatasetService_WriteDatasetRows_FullMethodName: func() proto.Message {
		return &exchangev1.WriteDatasetRowsRequest{Dataset: badDataset, Writes: []*exchangev1.RowWrite{{Row: baseRow()}}}
	},
	exchangev1.DatasetService_PullDatasetRows_FullMethodName: func() proto.Message {
		return &exchangev1.PullDatasetRowsRequest{Dataset: badDataset, SinceRevision: 1, PeriodFrom: "2026-01", PeriodTo: "2026-12",
			Locations: []string{"KH-12"}, Contributors: []string{"agencies/iom"}, Categories: map[string]string{"sex": "female"}, PageSize: 10}
	},
	exchangev1.DatasetService_AggregateDatasetRows_FullMethodName: func() proto.Message {
		return &exchangev1.AggregateDatasetRowsRequest{Dataset: badDataset, GroupBy: []string{"location"}, PeriodFrom: "2026-01",
			PeriodTo: "2026-12", Locations: []string{"KH-12"}, SuppressBelow: 5}
	},
	exchangev1.DatasetService_LockDatasetPeriod_FullMethodName: func() proto.Message {
		return &exchangev1.LockDatasetPeriodRequest{Dataset: badDataset, Period: "2026-01"}
	},
	exchangev1.DatasetService_UnlockDatasetPeriod_FullMethodName: func() proto.Message {
		return &exchangev1.UnlockDatasetPeriodRequest{Dataset: badDataset, Period: "2026-01", Reason: "correction"}
	},
	exchangev1.DatasetService_GetDatasetCompleteness_FullMethodName: func() proto.Message {
		return &exchangev1.GetDatasetCompletenessRequest{Dataset: badDataset, Period: "2026-01"}
	},
	exchangev1.DatasetService_WatchDatasetRows_FullMethodName: func() proto.Message {
		return &exchangev1.WatchDatasetRowsRequest{Dataset: badDataset, StartRevision: 1}
	},

	exchangev1.PlanService_GetPlan_FullMethodName: func() proto.Message {
		return &exchangev1.GetPlanRequest{Name: "agencies/ilo/plans/" + badID, Version: 1}
	},
	exchangev1.PlanService_ListPlans_FullMethodName: func() proto.Message {
		return &exchangev1.ListPlansRequest{Parent: "agencies/ilo", PageSize: 10, Niche: exchangev1.Niche_NICHE_PREVENTION, Country: "KH",
			Subdivision: "KH-12", Stage: exchangev1.PlanStage_PLAN_STAGE_CONCEPT, Period: basePeriod(), ExternalId: "KH-2026-001"}
	},
	exchangev1.PlanService_CreatePlan_FullMethodName: func() proto.Message {
		return &exchangev1.CreatePlanRequest{Parent: "agencies/ilo", Plan: basePlan(), RequestId: "plan-1"}
	},
	exchangev1.PlanService_UpdatePlan_FullMethodName: func() proto.Message {
		return &exchangev1.UpdatePlanRequest{Plan: basePlan(), UpdateMask: badMask("title")}
	},
	exchangev1.PlanService_CancelPlan_FullMethodName: func() proto.Message {
		return &exchangev1.CancelPlanRequest{Name: "agencies/ilo/plans/" + badID, Etag: "etag", Reason: "funding fell through"}
	},
	exchangev1.PlanService_ListPlanVersions_FullMethodName: func() proto.Message {
		return &exchangev1.ListPlanVersionsRequest{Name: "agencies/ilo/plans/" + badID, PageSize: 10}
	},
	exchangev1.PlanService_DiffPlanVersions_FullMethodName: func() proto.Message {
		return &exchangev1.DiffPlanVersionsRequest{Name: "agencies/ilo/plans/" + badID, FromVersion: 1, ToVersion: 2}
	},
	exchangev1.PlanService_ApplyPlans_FullMethodName: func() proto.Message {
		return &exchangev1.ApplyPlansRequest{Parent: "agencies/ilo", Plans: []*exchangev1.Plan{basePlan()}, ValidateOnly: true}
	},
	exchangev1.PlanService_ImportIatiActivities_FullMethodName: func() proto.Message {
		return &exchangev1.ImportIatiActivitiesRequest{Parent: "agencies/ilo", IatiXml: []byte(`<iati-activities version="2.03"/>`),
			Audience: baseAudience(), ValidateOnly: true}
	},
	exchangev1.PlanService_FindOverlaps_FullMethodName: func() proto.Message {
		return &exchangev1.FindOverlapsRequest{Country: "KH", Niche: exchangev1.Niche_NICHE_PREVENTION, Period: basePeriod(),
			Agency: "agencies/ilo", PageSize: 10}
	},
	exchangev1.PlanService_FindGaps_FullMethodName: func() proto.Message {
		return &exchangev1.FindGapsRequest{Country: "KH", Period: basePeriod(), Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}}
	},
	exchangev1.PlanService_GetCoverage_FullMethodName: func() proto.Message {
		return &exchangev1.GetCoverageRequest{Country: "KH", Period: basePeriod(), Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}}
	},
	exchangev1.PlanService_WatchPlans_FullMethodName: func() proto.Message {
		return &exchangev1.WatchPlansRequest{StartRevision: 1, Subdivisions: []string{"KH-12"}, Niches: []exchangev1.Niche{exchangev1.Niche_NICHE_PREVENTION}}
	},

	exchangev1.AdminService_Backup_FullMethodName: func() proto.Message {
		return &exchangev1.BackupRequest{ChunkSize: 1 << 20}
	},
	exchangev1.AdminService_GetStorageStatus_FullMethodName: func() proto.Message {
		return &exchangev1.GetStorageStatusRequest{}
	},

	exchangev1.AuditService_ListAuditEntries_FullMethodName: func() proto.Message {
		return &exchangev1.ListAuditEntriesRequest{PageSize: 10}
	},
	exchangev1.AuditService_WatchAuditEntries_FullMethodName: func() proto.Message {
		return &exchangev1.WatchAuditEntriesRequest{} // from now
	},
	exchangev1.AuditService_GetAuditHead_FullMethodName: func() proto.Message {
		return &exchangev1.GetAuditHeadRequest{}
	},

	grpc_health_v1.Health_Check_FullMethodName: func() proto.Message { return &grpc_health_v1.HealthCheckRequest{} },
	grpc_health_v1.Health_Watch_FullMethodName: func() proto.Message { return &grpc_health_v1.HealthCheckRequest{} },
	grpc_health_v1.Health_List_FullMethodName:  func() proto.Message { return &grpc_health_v1.HealthListRequest{} },
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName: func() proto.Message {
		return &reflectionv1.ServerReflectionRequest{}
	},
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: func() proto.Message {
		//lint:ignore SA1019 the server still serves the deprecated v1alpha reflection (reflection.Register does), so it is tested
		return &reflectionv1alpha.ServerReflectionRequest{}
	},
}
