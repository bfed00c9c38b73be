package server

// A small model of who may see and do what in the exchange, written from
// ARCHITECTURE.md ("Identity and access"), docs/security.md and the
// comments of the .proto files, not from the handlers. The isolation matrix and the randomized model
// check compare every answer of the real server with it.
//
// The rules, in short:
//
//   - Every caller is the identity of its certificate. An agency suspended
//     in the directory is refused at every call (AGENCY_SUSPENDED). A
//     method meant for another kind of caller (secretariat only, agencies
//     only) is refused before any resource is read, so the refusal says
//     nothing about resources.
//   - The directory (agencies, focal points, working groups, locations) is
//     readable by every member; the secretariat administers it; an agency
//     keeps its own record and focal points; a working group's own
//     secretariat may edit the group.
//   - Certificates: the secretariat sees and revokes all; an agency its
//     own. Others answer NOT_FOUND.
//   - Referrals exist only for their sender and their receiver (not for the
//     secretariat, not for the sender of the referral it was forwarded
//     from). Each verb belongs to one side; the other side gets
//     PERMISSION_DENIED, anyone else NOT_FOUND. Identifying details are
//     withheld from the receiver once consent is revoked, and revocation
//     reaches every referral forwarded from it: an agency that forwarded a
//     referral it received no longer sees the details through the referral
//     it forwarded either, because they are the same details of the same
//     person. Lists and watches carry summaries only.
//   - Datasets: owner, contributors (named, or the members of contributor
//     groups; observers of a contributor group read but do not write) and
//     the audience read; contributors write; only the owner changes the
//     definition and locks periods. Public aggregates are readable by every
//     member, suppressed below the dataset's threshold. Anyone else gets
//     NOT_FOUND.
//   - Plans: the owner and the current version's audience see a plan;
//     earlier versions only when their own audience included the reader.
//     Only the owner changes a plan (others who see it get
//     PERMISSION_DENIED). Views are computed over visible, non-cancelled
//     plans only.
//   - Audience: all members (the secretariat included), named agencies, or
//     the members, observers and secretariat of named working groups; the
//     owner always.

import (
	"maps"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// verdict is the model's answer for one call.
type verdict int

const (
	// vAllow: the call succeeds.
	vAllow verdict = iota + 1
	// vInvisible: NOT_FOUND, exactly as for a name never used.
	vInvisible
	// vDenied: the caller sees the resource but may not do this to it:
	// PERMISSION_DENIED.
	vDenied
	// vRole: the method is not for this kind of caller; refused before any
	// resource is read: PERMISSION_DENIED.
	vRole
	// vSuspended: the caller's agency is suspended: PERMISSION_DENIED with
	// reason AGENCY_SUSPENDED.
	vSuspended
	// vPrecondition: the caller may do this, but not in the resource's
	// current state: FAILED_PRECONDITION.
	vPrecondition
)

func (v verdict) String() string {
	switch v {
	case vAllow:
		return "allowed"
	case vInvisible:
		return "NOT_FOUND (invisible)"
	case vDenied:
		return "PERMISSION_DENIED (visible, not allowed)"
	case vRole:
		return "PERMISSION_DENIED (refused by role)"
	case vSuspended:
		return "PERMISSION_DENIED (agency suspended)"
	case vPrecondition:
		return "FAILED_PRECONDITION"
	}
	return "?"
}

// code is the gRPC code the verdict answers with.
func (v verdict) code() codes.Code {
	switch v {
	case vAllow:
		return codes.OK
	case vInvisible:
		return codes.NotFound
	case vDenied, vRole, vSuspended:
		return codes.PermissionDenied
	case vPrecondition:
		return codes.FailedPrecondition
	}
	return codes.Unknown
}

// reason is the ErrorInfo reason the verdict carries ("" when any).
func (v verdict) reason() string {
	switch v {
	case vInvisible:
		return "NOT_FOUND"
	case vDenied, vRole:
		return "PERMISSION_DENIED"
	case vSuspended:
		return "AGENCY_SUSPENDED"
	case vPrecondition:
		return "FAILED_PRECONDITION"
	}
	return ""
}

// refused reports whether the verdict refuses the call for access reasons
// (as opposed to allowing it or refusing it for the resource's state).
func (v verdict) refused() bool { return v != vAllow && v != vPrecondition }

// modelSecretariat is the caller name of the secretariat.
const modelSecretariat = "secretariat"

// callerAgency returns "agencies/{id}" for an agency caller, "" for the
// secretariat.
func callerAgency(caller string) string {
	if caller == modelSecretariat {
		return ""
	}
	return caller
}

// mAudience is an audience, with sorted lists.
type mAudience struct {
	all      bool
	agencies []string
	groups   []string
}

func audienceOf(a *exchangev1.Audience) mAudience {
	out := mAudience{all: a.GetAllMembers(), agencies: slices.Clone(a.GetAgencies()), groups: slices.Clone(a.GetWorkingGroups())}
	slices.Sort(out.agencies)
	slices.Sort(out.groups)
	return out
}

func (a mAudience) proto() *exchangev1.Audience {
	if !a.all && len(a.agencies) == 0 && len(a.groups) == 0 {
		return nil
	}
	return &exchangev1.Audience{AllMembers: a.all, Agencies: slices.Clone(a.agencies), WorkingGroups: slices.Clone(a.groups)}
}

func (a mAudience) equal(b mAudience) bool {
	return a.all == b.all && slices.Equal(a.agencies, b.agencies) && slices.Equal(a.groups, b.groups)
}

func (a mAudience) String() string {
	switch {
	case a.all:
		return "all members"
	case len(a.agencies) == 0 && len(a.groups) == 0:
		return "owner only"
	}
	return "agencies " + strings.Join(a.agencies, ",") + " groups " + strings.Join(a.groups, ",")
}

// mReferral is what the model knows of a referral.
type mReferral struct {
	name, sender, receiver string
	state                  exchangev1.ReferralState
	revoked, erased        bool
	parent                 string
	children               []string
}

// mDataset is what the model knows of a dataset.
type mDataset struct {
	name, owner       string
	contributors      []string
	contributorGroups []string
	audience          mAudience
	publicAggregates  bool
	threshold         int32
	// writers are the agencies with a live row; every row the tests write
	// has the same key but for the contributor.
	writers map[string]bool
	locked  map[string]bool
}

// mPlanVersion is one version of a plan.
type mPlanVersion struct {
	audience    mAudience
	cancelled   bool
	subdivision string
	title       string
}

// mPlan is what the model knows of a plan.
type mPlan struct {
	name, owner, externalID string
	versions                []mPlanVersion // versions[0] is version 1
}

func (p *mPlan) current() mPlanVersion { return p.versions[len(p.versions)-1] }

// mCert is what the model knows of a certificate.
type mCert struct {
	name, subject string
	revoked       bool
}

// model is the world as the model sees it.
type model struct {
	// suspended maps every agency in the directory to whether it is
	// suspended.
	suspended map[string]bool
	// groups maps every working group to its members and their roles.
	groups      map[string]map[string]exchangev1.MembershipRole
	referrals   map[string]*mReferral
	datasets    map[string]*mDataset
	plans       map[string]*mPlan
	certs       map[string]*mCert
	focalPoints map[string]string // name → agency
}

func newModel() *model {
	return &model{
		suspended: map[string]bool{}, groups: map[string]map[string]exchangev1.MembershipRole{},
		referrals: map[string]*mReferral{}, datasets: map[string]*mDataset{}, plans: map[string]*mPlan{},
		certs: map[string]*mCert{}, focalPoints: map[string]string{},
	}
}

// clone returns a deep copy, for the history watches are checked against.
func (m *model) clone() *model {
	c := newModel()
	maps.Copy(c.suspended, m.suspended)
	for g, members := range m.groups {
		c.groups[g] = maps.Clone(members)
	}
	for k, r := range m.referrals {
		cr := *r
		cr.children = slices.Clone(r.children)
		c.referrals[k] = &cr
	}
	for k, d := range m.datasets {
		cd := *d
		cd.contributors, cd.contributorGroups = slices.Clone(d.contributors), slices.Clone(d.contributorGroups)
		cd.writers, cd.locked = maps.Clone(d.writers), maps.Clone(d.locked)
		c.datasets[k] = &cd
	}
	for k, p := range m.plans {
		cp := *p
		cp.versions = slices.Clone(p.versions)
		c.plans[k] = &cp
	}
	for k, cert := range m.certs {
		cc := *cert
		c.certs[k] = &cc
	}
	maps.Copy(c.focalPoints, m.focalPoints)
	return c
}

// The role layer: which kind of caller each method is for. The comments
// of the .proto files say "Secretariat only" for the directory's
// administration, certificate issuing and the admin service; agencies alone
// send referrals, own and contribute to datasets and own plans (the
// secretariat "does not read what agencies exchange" and is "no member
// agency"). Everything else is open to every active caller and decided per
// resource.
type methodKind int

const (
	forEveryone methodKind = iota + 1
	forSecretariat
	forAgencies
)

// modelMethodKinds is keyed by "Service/Method". A registered method
// missing here makes the matrix fail.
var modelMethodKinds = map[string]methodKind{
	"DirectoryService/GetAgency":          forEveryone,
	"DirectoryService/ListAgencies":       forEveryone,
	"DirectoryService/CreateAgency":       forSecretariat,
	"DirectoryService/UpdateAgency":       forEveryone, // own record; secretariat any
	"DirectoryService/SuspendAgency":      forSecretariat,
	"DirectoryService/ReactivateAgency":   forSecretariat,
	"DirectoryService/GetFocalPoint":      forEveryone,
	"DirectoryService/ListFocalPoints":    forEveryone,
	"DirectoryService/CreateFocalPoint":   forEveryone, // own agency; secretariat any
	"DirectoryService/UpdateFocalPoint":   forEveryone,
	"DirectoryService/DeleteFocalPoint":   forEveryone,
	"DirectoryService/GetWorkingGroup":    forEveryone,
	"DirectoryService/ListWorkingGroups":  forEveryone,
	"DirectoryService/CreateWorkingGroup": forSecretariat,
	"DirectoryService/UpdateWorkingGroup": forEveryone, // secretariat, or the group's own secretariat
	"DirectoryService/DeleteWorkingGroup": forSecretariat,
	"DirectoryService/GetLocation":        forEveryone,
	"DirectoryService/ListLocations":      forEveryone,

	// The agency's own key; the secretariat must never set one.
	"DirectoryService/SetAgencyEncryptionKey": forAgencies,

	"CertificateService/IssueCertificate":  forSecretariat,
	"CertificateService/GetCertificate":    forEveryone,
	"CertificateService/ListCertificates":  forEveryone,
	"CertificateService/RevokeCertificate": forEveryone,

	// Referrals are sent by agencies; to the secretariat every referral
	// "does not exist", so the verbs on a named referral answer it
	// NOT_FOUND rather than a refusal.
	"ReferralService/CreateReferral":        forAgencies,
	"ReferralService/BatchCreateReferrals":  forAgencies,
	"ReferralService/ForwardReferral":       forAgencies,
	"ReferralService/GetReferral":           forEveryone,
	"ReferralService/ListReferrals":         forEveryone,
	"ReferralService/WatchReferrals":        forEveryone,
	"ReferralService/AcknowledgeReferral":   forEveryone,
	"ReferralService/AcceptReferral":        forEveryone,
	"ReferralService/RejectReferral":        forEveryone,
	"ReferralService/StartReferral":         forEveryone,
	"ReferralService/CompleteReferral":      forEveryone,
	"ReferralService/CancelReferral":        forEveryone,
	"ReferralService/RevokeReferralConsent": forEveryone,
	"ReferralService/EraseReferralDetails":  forEveryone,
	"ReferralService/SuggestRecipients":     forEveryone,
	"ReferralService/GetReferralStatistics": forEveryone,

	"DatasetService/CreateDataset":          forAgencies,
	"DatasetService/GetDataset":             forEveryone,
	"DatasetService/ListDatasets":           forEveryone,
	"DatasetService/UpdateDataset":          forAgencies,
	"DatasetService/WriteDatasetRows":       forAgencies,
	"DatasetService/PullDatasetRows":        forEveryone,
	"DatasetService/AggregateDatasetRows":   forEveryone,
	"DatasetService/LockDatasetPeriod":      forAgencies,
	"DatasetService/UnlockDatasetPeriod":    forAgencies,
	"DatasetService/GetDatasetCompleteness": forEveryone,
	"DatasetService/WatchDatasetRows":       forEveryone,

	// Plans are owned by agencies; Update and Cancel answer the
	// secretariat like any other non-owner, from the plan itself.
	"PlanService/GetPlan":              forEveryone,
	"PlanService/ListPlans":            forEveryone,
	"PlanService/CreatePlan":           forAgencies,
	"PlanService/UpdatePlan":           forEveryone,
	"PlanService/CancelPlan":           forEveryone,
	"PlanService/ListPlanVersions":     forEveryone,
	"PlanService/DiffPlanVersions":     forEveryone,
	"PlanService/ApplyPlans":           forAgencies,
	"PlanService/ImportIatiActivities": forAgencies,
	"PlanService/FindOverlaps":         forEveryone,
	"PlanService/FindGaps":             forEveryone,
	"PlanService/GetCoverage":          forEveryone,
	"PlanService/WatchPlans":           forEveryone,

	// The audit chain: the secretariat reads all of it, an agency the
	// entries about its own resources or made by it; the head moves with
	// everyone's changes, so only the secretariat reads it.
	"AuditService/ListAuditEntries":  forEveryone,
	"AuditService/GetAuditHead":      forSecretariat,
	"AuditService/WatchAuditEntries": forEveryone, // what ListAuditEntries shows the caller, live

	"AdminService/Backup":           forSecretariat,
	"AdminService/GetStorageStatus": forSecretariat,

	"Health/Check":                          forEveryone,
	"Health/Watch":                          forEveryone,
	"Health/List":                           forEveryone,
	"ServerReflection/ServerReflectionInfo": forEveryone,
}

// shortMethod turns "/alltogether.exchange.v1.PlanService/GetPlan" into
// "PlanService/GetPlan".
func shortMethod(full string) string {
	svc, method, _ := strings.Cut(strings.TrimPrefix(full, "/"), "/")
	return svc[strings.LastIndex(svc, ".")+1:] + "/" + method
}

// door is the verdict before any resource is read: 0 when the caller gets
// in.
func (m *model) door(caller, method string) verdict {
	if a := callerAgency(caller); a != "" && m.suspended[a] {
		return vSuspended
	}
	switch modelMethodKinds[shortMethod(method)] {
	case forEveryone:
		return 0
	case forSecretariat:
		if caller == modelSecretariat {
			return 0
		}
	case forAgencies:
		if caller != modelSecretariat {
			return 0
		}
	}
	return vRole
}

// inGroup reports whether the agency is in the group in any role.
func (m *model) inGroup(agency, group string) bool {
	_, ok := m.groups[group][agency]
	return ok
}

// audienceSees reports whether the caller sees a resource of owner shared
// with the audience.
func (m *model) audienceSees(caller, owner string, a mAudience) bool {
	if a.all {
		return true
	}
	me := callerAgency(caller)
	if me == "" {
		return false
	}
	if me == owner || slices.Contains(a.agencies, me) {
		return true
	}
	return slices.ContainsFunc(a.groups, func(g string) bool { return m.inGroup(me, g) })
}

// ---- referrals ----

func (m *model) referralParty(caller string, r *mReferral) bool {
	me := callerAgency(caller)
	return me != "" && (me == r.sender || me == r.receiver)
}

// getReferral is the verdict of GetReferral.
func (m *model) getReferral(caller, name string) verdict {
	r := m.referrals[name]
	if r == nil || !m.referralParty(caller, r) {
		return vInvisible
	}
	return vAllow
}

// referralDetails reports whether GetReferral shows the caller the
// identifying details.
func (m *model) referralDetails(caller, name string) bool {
	r := m.referrals[name]
	if r == nil || !m.referralParty(caller, r) || r.erased {
		return false
	}
	if !r.revoked {
		return true
	}
	// Revoked: only a sender who still sees the details at their source.
	if callerAgency(caller) != r.sender {
		return false
	}
	return r.parent == "" || m.referralDetails(caller, r.parent)
}

// referralDetailsOptional reports a case where withholding the details
// from a party that may see them is as good as showing them: the
// forwarder of a referral whose consent was revoked on that referral
// alone still sees the same details through the referral it received.
func (m *model) referralDetailsOptional(caller, name string) bool {
	r := m.referrals[name]
	return r != nil && r.revoked && r.parent != "" && callerAgency(caller) == r.sender && m.referralDetails(caller, name)
}

// referralVerb is the verdict of a state verb by one side.
type referralVerb struct {
	sender bool // true: the sender's verb; false: the receiver's
	from   []exchangev1.ReferralState
	to     exchangev1.ReferralState
}

var (
	rsRequested  = exchangev1.ReferralState_REFERRAL_STATE_REQUESTED
	rsReceived   = exchangev1.ReferralState_REFERRAL_STATE_RECEIVED
	rsAccepted   = exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED
	rsRejected   = exchangev1.ReferralState_REFERRAL_STATE_REJECTED
	rsInProgress = exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS
	rsCompleted  = exchangev1.ReferralState_REFERRAL_STATE_COMPLETED
	rsCancelled  = exchangev1.ReferralState_REFERRAL_STATE_CANCELLED

	verbAcknowledge = referralVerb{false, []exchangev1.ReferralState{rsRequested}, rsReceived}
	verbAccept      = referralVerb{false, []exchangev1.ReferralState{rsReceived}, rsAccepted}
	verbReject      = referralVerb{false, []exchangev1.ReferralState{rsReceived}, rsRejected}
	verbStart       = referralVerb{false, []exchangev1.ReferralState{rsAccepted}, rsInProgress}
	verbComplete    = referralVerb{false, []exchangev1.ReferralState{rsInProgress}, rsCompleted}
	verbCancel      = referralVerb{true, []exchangev1.ReferralState{rsRequested, rsReceived, rsAccepted, rsInProgress}, rsCancelled}
)

func (m *model) referralMove(caller, name string, v referralVerb) verdict {
	r := m.referrals[name]
	if r == nil || !m.referralParty(caller, r) {
		return vInvisible
	}
	if (callerAgency(caller) == r.sender) != v.sender {
		return vDenied
	}
	if !slices.Contains(v.from, r.state) {
		return vPrecondition
	}
	return vAllow
}

// revokeConsent is the verdict of RevokeReferralConsent: the sender's, once.
func (m *model) revokeConsent(caller, name string) verdict {
	r := m.referrals[name]
	if r == nil || !m.referralParty(caller, r) {
		return vInvisible
	}
	if callerAgency(caller) != r.sender {
		return vDenied
	}
	if r.revoked {
		return vPrecondition
	}
	return vAllow
}

// eraseDetails is the verdict of EraseReferralDetails: the sender's, once.
func (m *model) eraseDetails(caller, name string) verdict {
	r := m.referrals[name]
	if r == nil || !m.referralParty(caller, r) {
		return vInvisible
	}
	if callerAgency(caller) != r.sender {
		return vDenied
	}
	if r.erased {
		return vPrecondition
	}
	return vAllow
}

// forward is the verdict of ForwardReferral to another agency (never the
// caller itself).
func (m *model) forward(caller, name, to string) verdict {
	r := m.referrals[name]
	if r == nil || !m.referralParty(caller, r) {
		return vInvisible
	}
	if callerAgency(caller) != r.receiver {
		return vDenied
	}
	if !slices.Contains([]exchangev1.ReferralState{rsReceived, rsAccepted, rsInProgress}, r.state) || r.revoked || m.suspended[to] {
		return vPrecondition
	}
	return vAllow
}

// createReferral is the verdict of sending a referral to receiver (an
// agency in the directory, never the caller itself).
func (m *model) createReferral(receiver string) verdict {
	if m.suspended[receiver] {
		return vPrecondition
	}
	return vAllow
}

func (m *model) addReferral(name, sender, receiver, parent string) {
	m.referrals[name] = &mReferral{name: name, sender: sender, receiver: receiver, state: rsRequested, parent: parent}
	if parent != "" {
		m.referrals[parent].children = append(m.referrals[parent].children, name)
	}
}

// revoke marks consent revoked on the referral and everything forwarded
// from it.
func (m *model) revoke(name string) {
	r := m.referrals[name]
	r.revoked = true
	for _, c := range r.children {
		m.revoke(c)
	}
}

// referralsOf lists the referrals the caller is party to.
func (m *model) referralsOf(caller string) []string {
	var out []string
	for name, r := range m.referrals {
		if m.referralParty(caller, r) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// referralCount is what GetReferralStatistics adds up to: the caller's
// referrals, or all of them for the secretariat.
func (m *model) referralCount(caller string) int {
	if caller == modelSecretariat {
		return len(m.referrals)
	}
	return len(m.referralsOf(caller))
}

// ---- datasets ----

// contributes reports whether the caller may write rows: owner, named
// contributor, or a member (not an observer) of a contributor group.
func (m *model) contributes(caller string, d *mDataset) bool {
	me := callerAgency(caller)
	if me == "" {
		return false
	}
	if me == d.owner || slices.Contains(d.contributors, me) {
		return true
	}
	for _, g := range d.contributorGroups {
		if role, ok := m.groups[g][me]; ok && role != exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER {
			return true
		}
	}
	return false
}

// readsDataset reports whether the caller may read the dataset and its
// rows: contributors, anyone in a contributor group (observers see what
// is shared with their group), and the audience.
func (m *model) readsDataset(caller string, d *mDataset) bool {
	if m.contributes(caller, d) || m.audienceSees(caller, d.owner, d.audience) {
		return true
	}
	me := callerAgency(caller)
	return me != "" && slices.ContainsFunc(d.contributorGroups, func(g string) bool { return m.inGroup(me, g) })
}

// datasetRead is the verdict of Get, Pull, Completeness and Watch.
func (m *model) datasetRead(caller, name string) verdict {
	d := m.datasets[name]
	if d == nil || !m.readsDataset(caller, d) {
		return vInvisible
	}
	return vAllow
}

// datasetAggregate is the verdict of AggregateDatasetRows, and whether the
// caller gets only the public (suppressed) view.
func (m *model) datasetAggregate(caller, name string) (verdict, bool) {
	d := m.datasets[name]
	switch {
	case d == nil:
		return vInvisible, false
	case m.readsDataset(caller, d):
		return vAllow, false
	case d.publicAggregates:
		return vAllow, true
	}
	return vInvisible, false
}

// datasetWrite is the verdict of WriteDatasetRows.
func (m *model) datasetWrite(caller, name string) verdict {
	d := m.datasets[name]
	switch {
	case d == nil || !m.readsDataset(caller, d):
		return vInvisible
	case !m.contributes(caller, d):
		return vDenied
	}
	return vAllow
}

// datasetOwn is the verdict of Update, Lock and Unlock.
func (m *model) datasetOwn(caller, name string) verdict {
	d := m.datasets[name]
	switch {
	case d == nil || !m.readsDataset(caller, d):
		return vInvisible
	case callerAgency(caller) != d.owner:
		return vDenied
	}
	return vAllow
}

// datasetsOf lists the datasets the caller may read.
func (m *model) datasetsOf(caller string) []string {
	var out []string
	for name, d := range m.datasets {
		if m.readsDataset(caller, d) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// ---- plans ----

func (m *model) seesVersion(caller string, p *mPlan, v mPlanVersion) bool {
	return m.audienceSees(caller, p.owner, v.audience)
}

func (m *model) seesPlan(caller string, p *mPlan) bool { return m.seesVersion(caller, p, p.current()) }

// getPlan is the verdict of GetPlan at a version (0 for the current one).
func (m *model) getPlan(caller, name string, version int) verdict {
	p := m.plans[name]
	if p == nil || !m.seesPlan(caller, p) {
		return vInvisible
	}
	if version == 0 {
		return vAllow
	}
	if version > len(p.versions) || !m.seesVersion(caller, p, p.versions[version-1]) {
		return vInvisible
	}
	return vAllow
}

// changePlan is the verdict of UpdatePlan and CancelPlan.
func (m *model) changePlan(caller, name string) verdict {
	p := m.plans[name]
	switch {
	case p == nil || !m.seesPlan(caller, p):
		return vInvisible
	case callerAgency(caller) != p.owner:
		return vDenied
	case p.current().cancelled:
		return vPrecondition
	}
	return vAllow
}

// ownParent is the verdict of methods acting on "the caller's own plans"
// or creating a dataset under parent.
func (m *model) ownParent(caller, parent string) verdict {
	if callerAgency(caller) != parent {
		return vDenied
	}
	return vAllow
}

// plansOf lists the plans the caller sees, of one owner or all ("").
func (m *model) plansOf(caller, owner string) []string {
	var out []string
	for name, p := range m.plans {
		if (owner == "" || p.owner == owner) && m.seesPlan(caller, p) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// planVersionsOf lists the version numbers of a plan the caller sees.
func (m *model) planVersionsOf(caller, name string) []int32 {
	p := m.plans[name]
	var out []int32
	for i, v := range p.versions {
		if m.seesVersion(caller, p, v) {
			out = append(out, int32(i+1))
		}
	}
	return out
}

// coverage is the model's coverage matrix for the plans the caller sees:
// subdivision → owners.
func (m *model) coverage(caller string) map[string][]string {
	out := map[string][]string{}
	for _, p := range m.plans {
		v := p.current()
		if v.cancelled || !m.seesPlan(caller, p) {
			continue
		}
		if !slices.Contains(out[v.subdivision], p.owner) {
			out[v.subdivision] = append(out[v.subdivision], p.owner)
		}
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

// planCount is how many visible non-cancelled plans work in a
// subdivision.
func (m *model) planCount(caller, subdivision string) int32 {
	var n int32
	for _, p := range m.plans {
		if v := p.current(); !v.cancelled && v.subdivision == subdivision && m.seesPlan(caller, p) {
			n++
		}
	}
	return n
}

// overlaps lists the overlapping pairs the caller sees, "first|second" in
// name order: plans of different owners in the same province (every plan
// the tests make works in one province, in prevention, in 2026).
func (m *model) overlaps(caller string) []string {
	var visible []*mPlan
	for _, p := range m.plans {
		if !p.current().cancelled && m.seesPlan(caller, p) {
			visible = append(visible, p)
		}
	}
	var out []string
	for _, a := range visible {
		for _, b := range visible {
			if a.name < b.name && a.owner != b.owner && a.current().subdivision == b.current().subdivision {
				out = append(out, a.name+"|"+b.name)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ---- certificates ----

func (m *model) certVisible(caller string, c *mCert) bool {
	return caller == modelSecretariat || c.subject == caller
}

// getCert is the verdict of GetCertificate.
func (m *model) getCert(caller, name string) verdict {
	c := m.certs[name]
	if c == nil || !m.certVisible(caller, c) {
		return vInvisible
	}
	return vAllow
}

// revokeCert is the verdict of RevokeCertificate.
func (m *model) revokeCert(caller, name string) verdict {
	c := m.certs[name]
	switch {
	case c == nil || !m.certVisible(caller, c):
		return vInvisible
	case c.revoked:
		return vPrecondition
	}
	return vAllow
}

// certsOf lists the certificates the caller sees, of one subject or all.
func (m *model) certsOf(caller, subject string) []string {
	var out []string
	for name, c := range m.certs {
		if (subject == "" || c.subject == subject) && m.certVisible(caller, c) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// ---- directory ----

// updateAgency is the verdict of UpdateAgency on the agency's own fields.
func (m *model) updateAgency(caller, name string) verdict {
	if caller == modelSecretariat {
		if _, ok := m.suspended[name]; !ok {
			return vInvisible
		}
		return vAllow
	}
	if caller != name {
		return vDenied
	}
	return vAllow
}

// setEncryptionKey is the verdict of SetAgencyEncryptionKey: the agency
// itself only; another agency is refused whether or not the named agency
// exists (the directory is public, so the refusal tells nothing).
func (m *model) setEncryptionKey(caller, name string) verdict {
	if caller != name {
		return vDenied
	}
	return vAllow
}

// editFocalPoints is the verdict of creating, changing or deleting a focal
// point of agency (name "" for a create).
func (m *model) editFocalPoints(caller, agency, name string) verdict {
	if caller != modelSecretariat && caller != agency {
		return vDenied
	}
	if name != "" && m.focalPoints[name] == "" {
		return vInvisible
	}
	return vAllow
}

// updateGroup is the verdict of UpdateWorkingGroup.
func (m *model) updateGroup(caller, name string) verdict {
	g, ok := m.groups[name]
	if !ok {
		return vInvisible
	}
	if caller == modelSecretariat || g[caller] == exchangev1.MembershipRole_MEMBERSHIP_ROLE_SECRETARIAT {
		return vAllow
	}
	return vDenied
}

// agencyState is the verdict of Suspend (suspend true) and Reactivate.
func (m *model) agencyState(name string, suspend bool) verdict {
	s, ok := m.suspended[name]
	switch {
	case !ok:
		return vInvisible
	case s == suspend:
		return vPrecondition
	}
	return vAllow
}

// ---- audit ----

// auditAbout reports whether an agency sees an audit entry: made by it,
// or about its own record or anything named under it (focal points,
// plans), a referral it sent or received, a dataset it owns, or a
// certificate that names it, whoever made the change. The secretariat
// sees every entry.
func (m *model) auditAbout(caller string, e *exchangev1.AuditEntry) bool {
	if caller == modelSecretariat {
		return true
	}
	name := e.GetResourceName()
	switch {
	case e.GetActor() == caller, name == caller, strings.HasPrefix(name, caller+"/"):
		return true
	}
	if r := m.referrals[name]; r != nil {
		return m.referralParty(caller, r)
	}
	if d := m.datasets[name]; d != nil {
		return d.owner == caller
	}
	if c := m.certs[name]; c != nil {
		return c.subject == caller
	}
	return false
}
