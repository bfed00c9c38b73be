package server

import (
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// accessRule says which kinds of caller may call a method at all. Handlers
// then decide per resource (for example, an agency may update only its own
// record).
type accessRule int

const (
	// anyMember admits every authenticated agency and the secretariat.
	anyMember accessRule = iota + 1
	// secretariatOnly admits the secretariat alone.
	secretariatOnly
	// agenciesOnly admits agencies alone (the secretariat administers the
	// directory; it does not read what agencies exchange).
	agenciesOnly
)

// accessRules has an explicit rule for every method the server registers;
// a method without a rule is refused (default deny), and a test fails when
// a registered method has none.
var accessRules = map[string]accessRule{
	exchangev1.DirectoryService_GetAgency_FullMethodName:          anyMember,
	exchangev1.DirectoryService_ListAgencies_FullMethodName:       anyMember,
	exchangev1.DirectoryService_CreateAgency_FullMethodName:       secretariatOnly,
	exchangev1.DirectoryService_UpdateAgency_FullMethodName:       anyMember,
	exchangev1.DirectoryService_SuspendAgency_FullMethodName:      secretariatOnly,
	exchangev1.DirectoryService_ReactivateAgency_FullMethodName:   secretariatOnly,
	exchangev1.DirectoryService_GetFocalPoint_FullMethodName:      anyMember,
	exchangev1.DirectoryService_ListFocalPoints_FullMethodName:    anyMember,
	exchangev1.DirectoryService_CreateFocalPoint_FullMethodName:   anyMember,
	exchangev1.DirectoryService_UpdateFocalPoint_FullMethodName:   anyMember,
	exchangev1.DirectoryService_DeleteFocalPoint_FullMethodName:   anyMember,
	exchangev1.DirectoryService_GetWorkingGroup_FullMethodName:    anyMember,
	exchangev1.DirectoryService_ListWorkingGroups_FullMethodName:  anyMember,
	exchangev1.DirectoryService_CreateWorkingGroup_FullMethodName: secretariatOnly,
	exchangev1.DirectoryService_UpdateWorkingGroup_FullMethodName: anyMember,
	exchangev1.DirectoryService_DeleteWorkingGroup_FullMethodName: secretariatOnly,
	exchangev1.DirectoryService_GetLocation_FullMethodName:        anyMember,
	exchangev1.DirectoryService_ListLocations_FullMethodName:      anyMember,

	// An agency's encryption key is set by the agency itself (the handler
	// refuses another agency), never by the secretariat, which could then
	// read what partners seal to it.
	exchangev1.DirectoryService_SetAgencyEncryptionKey_FullMethodName: agenciesOnly,

	exchangev1.CertificateService_IssueCertificate_FullMethodName:  secretariatOnly,
	exchangev1.CertificateService_GetCertificate_FullMethodName:    anyMember,
	exchangev1.CertificateService_ListCertificates_FullMethodName:  anyMember,
	exchangev1.CertificateService_RevokeCertificate_FullMethodName: anyMember,

	// Referrals: only agencies send them. Every other method admits the
	// secretariat too, so that it gets NOT_FOUND (or nothing) exactly as
	// for a referral that does not exist, rather than a refusal that would
	// tell it the method has something to hide.
	exchangev1.ReferralService_CreateReferral_FullMethodName:        agenciesOnly,
	exchangev1.ReferralService_BatchCreateReferrals_FullMethodName:  agenciesOnly,
	exchangev1.ReferralService_ForwardReferral_FullMethodName:       agenciesOnly,
	exchangev1.ReferralService_GetReferral_FullMethodName:           anyMember,
	exchangev1.ReferralService_ListReferrals_FullMethodName:         anyMember,
	exchangev1.ReferralService_WatchReferrals_FullMethodName:        anyMember,
	exchangev1.ReferralService_AcknowledgeReferral_FullMethodName:   anyMember,
	exchangev1.ReferralService_AcceptReferral_FullMethodName:        anyMember,
	exchangev1.ReferralService_RejectReferral_FullMethodName:        anyMember,
	exchangev1.ReferralService_StartReferral_FullMethodName:         anyMember,
	exchangev1.ReferralService_CompleteReferral_FullMethodName:      anyMember,
	exchangev1.ReferralService_CancelReferral_FullMethodName:        anyMember,
	exchangev1.ReferralService_RevokeReferralConsent_FullMethodName: anyMember,
	exchangev1.ReferralService_EraseReferralDetails_FullMethodName:  anyMember,
	exchangev1.ReferralService_SuggestRecipients_FullMethodName:     anyMember,
	exchangev1.ReferralService_GetReferralStatistics_FullMethodName: anyMember,

	// Datasets: agencies own and contribute; the secretariat may read what
	// is shared with all members and public aggregates.
	exchangev1.DatasetService_CreateDataset_FullMethodName:          agenciesOnly,
	exchangev1.DatasetService_GetDataset_FullMethodName:             anyMember,
	exchangev1.DatasetService_ListDatasets_FullMethodName:           anyMember,
	exchangev1.DatasetService_UpdateDataset_FullMethodName:          agenciesOnly,
	exchangev1.DatasetService_WriteDatasetRows_FullMethodName:       agenciesOnly,
	exchangev1.DatasetService_PullDatasetRows_FullMethodName:        anyMember,
	exchangev1.DatasetService_AggregateDatasetRows_FullMethodName:   anyMember,
	exchangev1.DatasetService_LockDatasetPeriod_FullMethodName:      agenciesOnly,
	exchangev1.DatasetService_UnlockDatasetPeriod_FullMethodName:    agenciesOnly,
	exchangev1.DatasetService_GetDatasetCompleteness_FullMethodName: anyMember,
	exchangev1.DatasetService_WatchDatasetRows_FullMethodName:       anyMember,

	// Plans: only agencies own plans, so only they create, apply and
	// import. Reads, views and watches admit the secretariat, which sees
	// the plans shared with all members; Update and Cancel admit it too,
	// so that it gets NOT_FOUND or PERMISSION_DENIED from the plan itself,
	// as any other non-owner does.
	exchangev1.PlanService_GetPlan_FullMethodName:              anyMember,
	exchangev1.PlanService_ListPlans_FullMethodName:            anyMember,
	exchangev1.PlanService_CreatePlan_FullMethodName:           agenciesOnly,
	exchangev1.PlanService_UpdatePlan_FullMethodName:           anyMember,
	exchangev1.PlanService_CancelPlan_FullMethodName:           anyMember,
	exchangev1.PlanService_ListPlanVersions_FullMethodName:     anyMember,
	exchangev1.PlanService_DiffPlanVersions_FullMethodName:     anyMember,
	exchangev1.PlanService_ApplyPlans_FullMethodName:           agenciesOnly,
	exchangev1.PlanService_ImportIatiActivities_FullMethodName: agenciesOnly,
	exchangev1.PlanService_FindOverlaps_FullMethodName:         anyMember,
	exchangev1.PlanService_FindGaps_FullMethodName:             anyMember,
	exchangev1.PlanService_GetCoverage_FullMethodName:          anyMember,
	exchangev1.PlanService_WatchPlans_FullMethodName:           anyMember,
	// Consultants: the roster is agencies' shared personal data of the
	// consultants; the secretariat administers the directory, not the
	// roster.
	exchangev1.ConsultantService_GetConsultant_FullMethodName:    agenciesOnly,
	exchangev1.ConsultantService_ListConsultants_FullMethodName:  agenciesOnly,
	exchangev1.ConsultantService_CreateConsultant_FullMethodName: agenciesOnly,
	exchangev1.ConsultantService_UpdateConsultant_FullMethodName: agenciesOnly,
	exchangev1.ConsultantService_EraseConsultant_FullMethodName:  agenciesOnly,
	exchangev1.ConsultantService_CreateEngagement_FullMethodName: agenciesOnly,
	exchangev1.ConsultantService_ListEngagements_FullMethodName:  agenciesOnly,
	exchangev1.ConsultantService_GetEngagement_FullMethodName:    agenciesOnly,
	exchangev1.ConsultantService_CancelEngagement_FullMethodName: agenciesOnly,

	// Reports: agencies alone draft; reads, comments and owner-only
	// changes admit every caller so that a non-reader gets NOT_FOUND from
	// the report itself, as for plans.
	exchangev1.ReportService_GetReport_FullMethodName:           anyMember,
	exchangev1.ReportService_ListReports_FullMethodName:         anyMember,
	exchangev1.ReportService_CreateReport_FullMethodName:        agenciesOnly,
	exchangev1.ReportService_UpdateReport_FullMethodName:        anyMember,
	exchangev1.ReportService_SubmitReport_FullMethodName:        anyMember,
	exchangev1.ReportService_CreateReportComment_FullMethodName: agenciesOnly,
	exchangev1.ReportService_ListReportComments_FullMethodName:  anyMember,

	exchangev1.AuditService_ListAuditEntries_FullMethodName:  anyMember,
	exchangev1.AuditService_GetAuditHead_FullMethodName:      secretariatOnly, // the head moves with everyone's changes
	exchangev1.AuditService_WatchAuditEntries_FullMethodName: anyMember,       // each sees what ListAuditEntries shows it
	exchangev1.AdminService_Backup_FullMethodName:            secretariatOnly,
	exchangev1.AdminService_GetStorageStatus_FullMethodName:  secretariatOnly,

	grpc_health_v1.Health_Check_FullMethodName: anyMember,
	grpc_health_v1.Health_Watch_FullMethodName: anyMember,
	grpc_health_v1.Health_List_FullMethodName:  anyMember,

	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      anyMember,
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: anyMember,

	// Documents: only agencies own documents, so only they create and
	// upload. Reads and downloads admit the secretariat, which sees the
	// documents shared with all members.
	exchangev1.DocumentService_CreateDocument_FullMethodName:          agenciesOnly,
	exchangev1.DocumentService_GetDocument_FullMethodName:             anyMember,
	exchangev1.DocumentService_ListDocuments_FullMethodName:           anyMember,
	exchangev1.DocumentService_UploadDocumentVersion_FullMethodName:   agenciesOnly,
	exchangev1.DocumentService_ListDocumentVersions_FullMethodName:    anyMember,
	exchangev1.DocumentService_DownloadDocumentVersion_FullMethodName: anyMember,
}

// admits reports whether the rule lets the caller in.
func (r accessRule) admits(c Caller) bool {
	switch r {
	case anyMember:
		return true
	case secretariatOnly:
		return c.IsSecretariat()
	case agenciesOnly:
		return c.AgencyName() != ""
	}
	return false
}
