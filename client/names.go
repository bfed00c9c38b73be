package client

import (
	"strings"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// AllAgencies is the parent that lists the focal points of every agency.
const AllAgencies = "agencies/-"

// SecretariatSubject is the certificate subject of the secretariat.
const SecretariatSubject = "secretariat"

// AgencyName returns the resource name of the agency with the given id,
// for example "agencies/ilo" for "ilo". It does not check the id.
func AgencyName(id string) string { return "agencies/" + id }

// WorkingGroupName returns the resource name of the working group with the
// given id, for example "workingGroups/un-wg" for "un-wg".
func WorkingGroupName(id string) string { return "workingGroups/" + id }

// LocationName returns the resource name of a location code, for example
// "locations/KH-12" for "KH-12".
func LocationName(code string) string { return "locations/" + code }

// CertificateName returns the resource name of a certificate serial in
// lowercase hex, for example "certificates/1f3a" for "1f3a".
func CertificateName(serial string) string { return "certificates/" + serial }

// FocalPointName returns the resource name of focal point id of the agency
// with agencyID, for example "agencies/ilo/focalPoints/01j...".
func FocalPointName(agencyID, id string) string {
	return AgencyName(agencyID) + "/focalPoints/" + id
}

// ResourceID returns the last segment of a resource name, for example "ilo"
// for "agencies/ilo" and "1f3a" for "certificates/1f3a".
func ResourceID(name string) string {
	return name[strings.LastIndexByte(name, '/')+1:]
}

// CalendarDate returns the calendar date of t in t's location.
func CalendarDate(t time.Time) *exchangev1.CalendarDate {
	y, m, d := t.Date()
	return &exchangev1.CalendarDate{Year: int32(y), Month: int32(m), Day: int32(d)}
}

// ReferralName returns the resource name of the referral with the given
// id, for example "referrals/01jd8x4k2m9q7r3t5v6w8y0z1a".
func ReferralName(id string) string { return "referrals/" + id }

// DatasetName returns the resource name of dataset id of the agency with
// agencyID (its owner), for example "agencies/ilo/datasets/returns" for
// "ilo" and "returns".
func DatasetName(agencyID, id string) string {
	return AgencyName(agencyID) + "/datasets/" + id
}

// PlanName returns the resource name of plan id of the agency with
// agencyID, for example "agencies/ilo/plans/01jd8x4k2m9q7r3t5v6w8y0z1a".
func PlanName(agencyID, id string) string {
	return AgencyName(agencyID) + "/plans/" + id
}
