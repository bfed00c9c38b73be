package server

import (
	"time"

	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// checkLocationRef checks that a location names a province the exchange
// knows, for the countries whose provinces it ships. Other countries (for
// example a donor's home country) are accepted as written.
func checkLocationRef(field string, ref *exchangev1.LocationRef) error {
	if locationRefKnown(ref) {
		return nil
	}
	if err := checkCountry(field+".country", ref.GetCountry()); err != nil {
		return err
	}
	if ref.GetSubdivision() == "" || !geo.KnownCountry(ref.GetCountry()) {
		return nil
	}
	if _, ok := geo.Lookup(ref.GetSubdivision()); !ok {
		return invalidField(field+".subdivision", unknownProvince(ref.GetSubdivision(), " of "+ref.GetCountry()))
	}
	return nil
}

// locationRefKnown decides whether checkLocationRef accepts ref, which
// itself only names what failed. It builds no field path, so that the
// referrals of a batch, which almost always pass, cost no strings for the
// errors they do not have.
func locationRefKnown(ref *exchangev1.LocationRef) bool {
	if _, ok := geo.ISOCountry(ref.GetCountry()); !ok {
		return false
	}
	if ref.GetSubdivision() == "" || !geo.KnownCountry(ref.GetCountry()) {
		return true
	}
	_, ok := geo.Lookup(ref.GetSubdivision())
	return ok
}

// checkCountry checks that a code is an ISO 3166-1 alpha-2 country.
func checkCountry(field, code string) error {
	if _, ok := geo.ISOCountry(code); !ok {
		return invalidField(field, code+" is not an ISO 3166-1 alpha-2 country code")
	}
	return nil
}

// checkDate checks that a calendar date exists (protovalidate checks only
// the ranges of its parts).
func checkDate(field string, d *exchangev1.CalendarDate) error {
	if d == nil {
		return nil
	}
	t := time.Date(int(d.GetYear()), time.Month(d.GetMonth()), int(d.GetDay()), 0, 0, 0, 0, time.UTC)
	if t.Day() != int(d.GetDay()) {
		return invalidField(field, "no such date")
	}
	return nil
}

// checkPeriod checks both ends of a period.
func checkPeriod(field string, p *exchangev1.DatePeriod) error {
	if err := checkDate(field+".start", p.GetStart()); err != nil {
		return err
	}
	return checkDate(field+".end", p.GetEnd())
}
