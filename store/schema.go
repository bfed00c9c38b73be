package store

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// This file names every bucket and every key encoding of the database. Keys
// that must sort numerically are fixed-width big-endian; text parts are
// separated by a zero byte, which no identifier contains. Values are
// deterministic protobuf encodings.

// schemaVersion is the version of the layout described here. Open refuses a
// database written by a newer layout, and brings an older one up to date
// (migrate.go). Version 3 holds no key to any referral's details (their
// clients seal them) and so no referral_keys bucket; version 2 keys
// datasets under their owner; version 1 keyed them by id alone.
const schemaVersion = 3

var (
	// bucketMeta holds single values: metaSchemaVersion, metaRevision,
	// metaAuditHead.
	bucketMeta = []byte("meta")
	// bucketChanges is the change log: changeKey(revision) → Change.
	bucketChanges = []byte("changes")
	// bucketAudit is the audit chain: u64(sequence) → AuditEntry.
	bucketAudit = []byte("audit")
	// bucketRequests records create-like calls for idempotency:
	// requestKey(actor, method, request id) → resource name.
	bucketRequests = []byte("requests")

	// bucketAgencies: agency id → Agency.
	bucketAgencies = []byte("agencies")
	// bucketAgencyByCountry: country ∅ agency id → empty.
	bucketAgencyByCountry = []byte("agencies_by_country")
	// bucketAgencyByNiche: u32(niche) agency id → empty.
	bucketAgencyByNiche = []byte("agencies_by_niche")
	// bucketAgencyBySubdivision: subdivision ∅ agency id → empty.
	bucketAgencyBySubdivision = []byte("agencies_by_subdivision")

	// bucketFocalPoints: agency id ∅ focal point id → FocalPoint.
	bucketFocalPoints = []byte("focal_points")
	// bucketFocalPointByTopic: agency id ∅ topic ∅ u32(start yyyymmdd)
	// focal point id → empty. It gives List its order.
	bucketFocalPointByTopic = []byte("focal_points_by_topic")

	// bucketWorkingGroups: working group id → WorkingGroup.
	bucketWorkingGroups = []byte("working_groups")
	// bucketWorkingGroupByMember: agency id ∅ working group id → empty.
	bucketWorkingGroupByMember = []byte("working_groups_by_member")

	// bucketCertificates: serial (lowercase hex) → Certificate.
	bucketCertificates = []byte("certificates")
	// bucketCertificateBySubject: subject ∅ serial → empty.
	bucketCertificateBySubject = []byte("certificates_by_subject")

	// bucketReferrals: referral id → Referral (identifying details
	// included; the server decides what each reader sees).
	bucketReferrals = []byte("referrals")
	// bucketReferralByParty: agency id ∅ newestFirst(referral id) ∅ side
	// ('i' inbox, 'o' outbox) → empty. One entry per party, so an agency's
	// referrals are listed newest first in both directions at once.
	bucketReferralByParty = []byte("referrals_by_party")

	// bucketReferralDetails: referral id → the sealed_details its sending
	// client sealed (an age file the exchange cannot open), kept as sent.
	// The referral record itself never holds them.
	bucketReferralDetails = []byte("referral_details")

	// bucketDatasets: owner agency id ∅ dataset id → Dataset. Datasets are
	// named under their owner, "agencies/{agency}/datasets/{dataset}".
	bucketDatasets = []byte("datasets")
	// bucketDatasetRows: owner id ∅ dataset id ∅ rowKey → Row, where
	// rowKey is period ∅ location ∅ contributor id ∅ then "key=value" for
	// each category with a value, in key order. Rows sort by period, so a
	// period range is one seek. Deleted rows stay as tombstones.
	bucketDatasetRows = []byte("dataset_rows")
	// bucketDatasetRowChanges: owner id ∅ dataset id ∅ u64(revision)
	// rowKey → empty, one entry per row at the revision that last wrote
	// it, so that an incremental pull since R is one seek.
	bucketDatasetRowChanges = []byte("dataset_row_changes")

	// bucketPlans: agency id ∅ plan id → Plan (the current version).
	bucketPlans = []byte("plans")
	// bucketPlanVersions: plan id u32(version) → Plan, every version
	// including the current one. Plan ids are fixed-width, so no separator.
	bucketPlanVersions = []byte("plan_versions")
	// bucketPlanByExternalID: agency id ∅ external id ∅ plan id → empty.
	// It keeps external ids unique per agency and finds a plan by one.
	bucketPlanByExternalID = []byte("plans_by_external_id")

	// bucketConsultants: agency id ∅ consultant id → Consultant, under the
	// agency that added the consultant.
	bucketConsultants = []byte("consultants")
	// bucketEngagements: consultant id ∅ engagement id → Engagement.
	// Consultant ids are unique across agencies, so a consultant's
	// engagements are one prefix, in booking order.
	bucketEngagements = []byte("engagements")
	// bucketDocuments: agency id ∅ document id → Document.
	bucketDocuments = []byte("documents")
	// bucketDocumentVersions: document id u32(version) → DocumentVersion,
	// complete versions only. Document ids are fixed-width.
	bucketDocumentVersions = []byte("documents_versions")
	// bucketDocumentChunks: document id u32(version) ∅ u32(chunk) → up to
	// DocumentChunkBytes of the version's file. Chunks of an upload in
	// progress are here too, but no version record points at them.
	bucketDocumentChunks = []byte("documents_chunks")
	// bucketDocumentUploads: document id → DocumentUpload, the upload in
	// progress of the document's next version, at most one.
	bucketDocumentUploads = []byte("documents_uploads")
	// bucketReports: agency id ∅ report id → Report (the draft, or the
	// last submitted version when unchanged since).
	bucketReports = []byte("reports")
	// bucketReportVersions: report id u32(version) → Report, every
	// submitted version. Report ids are fixed-width, so no separator.
	bucketReportVersions = []byte("report_versions")
	// bucketReportComments: report id ∅ comment id → ReportComment.
	bucketReportComments = []byte("report_comments")
)

// Scrubs (scrub.go) create and delete scratch buckets named
// "scrub/{number}" while they run; Open deletes any left by a scrub that
// stopped half-way, and ContentHash ignores them.

// allBuckets lists every bucket; Open creates the missing ones.
var allBuckets = [][]byte{
	bucketMeta, bucketChanges, bucketAudit, bucketRequests,
	bucketAgencies, bucketAgencyByCountry, bucketAgencyByNiche, bucketAgencyBySubdivision,
	bucketFocalPoints, bucketFocalPointByTopic,
	bucketWorkingGroups, bucketWorkingGroupByMember,
	bucketCertificates, bucketCertificateBySubject,
	bucketReferrals, bucketReferralByParty, bucketReferralDetails,
	bucketDatasets, bucketDatasetRows, bucketDatasetRowChanges,
	bucketPlans, bucketPlanVersions, bucketPlanByExternalID,
	bucketConsultants, bucketEngagements,
	bucketDocuments, bucketDocumentVersions, bucketDocumentChunks, bucketDocumentUploads,
	bucketReports, bucketReportVersions, bucketReportComments,
}

// appendBuckets are the buckets whose new keys come after every key already
// there (revisions, audit sequence numbers, time-ordered ids and request
// ids), with the fill bbolt gives their pages when it splits them. bbolt
// splits a full page in half by default (FillPercent 0.5), which suits keys
// that arrive in any order but leaves an append-only bucket half empty
// forever: twice the pages to write at each commit, to read at start-up and
// to keep in the file. Logs keyed by a counter are packed full. Buckets
// keyed by ids keep a little room: ids are made before the write queues for
// its commit, so two concurrent writes may commit in the opposite order and
// the later id land just before the earlier one; referrals keep a tenth
// free because their records also grow as they move through their states.
var appendBuckets = []struct {
	name []byte
	fill float64
}{
	{bucketChanges, 1.0},
	{bucketAudit, 1.0},
	{bucketRequests, 0.9},
	{bucketReferrals, 0.9},
	{bucketReferralDetails, 0.95},
	{bucketPlanVersions, 0.9},
	{bucketDatasetRowChanges, 1.0},
}

// BucketFill returns the FillPercent the store gives the pages of the
// named bucket when bbolt splits them: bbolt's default, 0.5, for buckets
// whose keys arrive in any order. The benchmark's raw-bbolt storage ceiling
// uses it to lay pages out as the store does.
func BucketFill(name string) float64 {
	for _, b := range appendBuckets {
		if string(b.name) == name {
			return b.fill
		}
	}
	return bolt.DefaultFillPercent
}

// fillAppendBuckets sets the fill of the append-mostly buckets for the
// rest of a write transaction (bbolt does not store it).
func fillAppendBuckets(tx *bolt.Tx) {
	for _, b := range appendBuckets {
		if bucket := tx.Bucket(b.name); bucket != nil {
			bucket.FillPercent = b.fill
		}
	}
}

// Keys of bucketMeta.
var (
	metaSchemaVersion = []byte("schema_version") // u64
	metaRevision      = []byte("revision")       // u64: last committed revision
	metaAuditHead     = []byte("audit_head")     // u64(sequence) ‖ sha256 of last entry
	metaCompacted     = []byte("compacted")      // u64: change-log entries up to here are gone
	// metaFloor is a revision every later one must exceed: a safe
	// revision handed out on etcd (SafeRevision), u64; bbolt files have
	// none.
	metaFloor = []byte("floor")
	// metaRestoring marks an exchange on etcd that a restore is still
	// copying (RestoreEtcd); OpenEtcd refuses it.
	metaRestoring = []byte("restoring")
	// metaPageSecret is a random 32-byte key made at first open; the
	// server seals page tokens that hold positions with it (PageSecret).
	metaPageSecret = []byte("page_secret")
)

// sep separates text parts of composite keys.
const sep = 0

// u64 encodes n as 8 big-endian bytes.
func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// u32 encodes n as 4 big-endian bytes.
func u32(n uint32) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, n)
	return b
}

// joinKey joins text parts with the separator; a trailing empty part leaves
// a trailing separator, which makes a prefix that matches only whole parts.
func joinKey(parts ...string) []byte {
	// One allocation of the exact size; strings.Join and a conversion to
	// bytes made two.
	n := max(len(parts)-1, 0)
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			k = append(k, sep)
		}
		k = append(k, p...)
	}
	return k
}

// changeKey orders change-log entries by revision. The four zero bytes
// after the revision are a position within the revision from the first
// layout, when a revision could hold several changes; every revision now
// holds one, and the bytes stay so that the layout does not change.
func changeKey(revision int64) []byte {
	k := make([]byte, 12) // the last four bytes stay zero
	binary.BigEndian.PutUint64(k, uint64(revision))
	return k
}

func requestKey(actor, method, requestID string) []byte {
	return joinKey(actor, method, requestID)
}
