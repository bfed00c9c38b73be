package rowfile

import (
	"fmt"
	"regexp"
	"strings"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// The fixed columns. A category or measure may not use these keys.
const (
	colPeriod      = "period"
	colLocation    = "location"
	colContributor = "contributor"
	colDeleted     = "deleted"
)

// HXL hashtags of the fixed columns (HXL 1.1 hashtag dictionary: #date,
// #country, #adm1, #adm2, #loc and #org with the +code attribute).
const (
	hxlPeriod      = "#date+period"
	hxlContributor = "#org+code"
	hxlCountry     = "#country+code"
	hxlProvince    = "#adm1+code"
	hxlDistrict    = "#adm2+code"
	hxlLocation    = "#loc+code" // for a schema without a location level
)

type columnKind int

const (
	kindIgnored columnKind = iota // a column read and dropped (contributor, unnamed and empty)
	kindPeriod
	kindLocation
	kindContributor
	kindCategory
	kindMeasure
	kindDeleted
)

// column is one column of a CSV file.
type column struct {
	name    string // the header: a fixed name or a category or measure key
	kind    columnKind
	hxl     string              // the schema's hashtag, if any
	hxlDef  string              // the default hashtag
	measure *exchangev1.Measure // for kindMeasure
}

// hashtag returns the column's hashtag for the HXL row.
func (c column) hashtag() (string, error) { return hashtagFor(c.name, c.hxl, c.hxlDef) }

// hxlHashtag matches a HXL hashtag with attributes: "#" and a token, then
// any number of "+" and a token, where a token is a letter followed by
// letters, digits and underscores (HXL 1.1 tagging conventions; the same
// pattern as libhxl's TOKEN_PATTERN). Whitespace may separate attributes.
var hxlHashtag = regexp.MustCompile(`^#[A-Za-z][_0-9A-Za-z]*(\s*\+[A-Za-z][_0-9A-Za-z]*)*$`)

// extensionHashtag returns the default hashtag for a key the schema gives
// no hashtag for: an HXL extension hashtag, "#x_" and the key with every
// character that is not a lowercase letter, digit or underscore replaced
// by "_". Schema keys are already lowercase identifiers, so the key
// usually comes through unchanged: "age_group" becomes "#x_age_group".
func extensionHashtag(key string) string {
	var b strings.Builder
	b.WriteString("#x_")
	for _, r := range strings.ToLower(key) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// hashtagFor returns the hashtag to write for a column whose schema
// hashtag is given (possibly empty) and whose default is def. A given
// hashtag may omit the leading "#"; one that is not valid HXL is an error,
// since the HXL row of the file would not be recognised on import.
func hashtagFor(name, given, def string) (string, error) {
	given = strings.TrimSpace(given)
	if given == "" {
		return def, nil
	}
	if !strings.HasPrefix(given, "#") {
		given = "#" + given
	}
	if !hxlHashtag.MatchString(given) {
		return "", fmt.Errorf("rowfile: the schema's HXL hashtag %q for column %s is not a valid HXL hashtag (like #affected+f)", given, name)
	}
	return given, nil
}

// locationHashtag is the default hashtag of the location column.
func locationHashtag(level exchangev1.AdminLevel) string {
	switch level {
	case exchangev1.AdminLevel_ADMIN_LEVEL_COUNTRY:
		return hxlCountry
	case exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE:
		return hxlProvince
	case exchangev1.AdminLevel_ADMIN_LEVEL_DISTRICT:
		return hxlDistrict
	}
	return hxlLocation
}

// schemaColumns returns the columns of the dataset's CSV layout: period,
// location, contributor, the categories, the measures, and deleted when
// tombstones is set. It refuses a schema whose keys clash with each other
// or with the fixed columns. Hashtags are checked only when written.
func schemaColumns(d *exchangev1.Dataset, tombstones bool) ([]column, error) {
	s := d.GetSchema()
	if s == nil {
		return nil, fmt.Errorf("rowfile: the dataset has no schema")
	}
	cols := []column{
		{name: colPeriod, kind: kindPeriod, hxlDef: hxlPeriod},
		{name: colLocation, kind: kindLocation, hxl: s.GetLocationHxl(), hxlDef: locationHashtag(s.GetLocationLevel())},
		{name: colContributor, kind: kindContributor, hxlDef: hxlContributor},
	}
	seen := map[string]bool{colPeriod: true, colLocation: true, colContributor: true, colDeleted: true}
	add := func(key, hxl string, kind columnKind, m *exchangev1.Measure) error {
		switch {
		case key == "":
			return fmt.Errorf("rowfile: the schema has a category or measure without a key")
		case seen[key]:
			return fmt.Errorf("rowfile: the schema's key %q is used twice or clashes with a fixed column (period, location, contributor, deleted)", key)
		}
		seen[key] = true
		cols = append(cols, column{name: key, kind: kind, hxl: hxl, hxlDef: extensionHashtag(key), measure: m})
		return nil
	}
	for _, c := range s.GetCategories() {
		if err := add(c.GetKey(), c.GetHxl(), kindCategory, nil); err != nil {
			return nil, err
		}
	}
	for _, m := range s.GetMeasures() {
		if err := add(m.GetKey(), m.GetHxl(), kindMeasure, m); err != nil {
			return nil, err
		}
	}
	if tombstones {
		cols = append(cols, column{name: colDeleted, kind: kindDeleted, hxlDef: extensionHashtag(colDeleted)})
	}
	return cols, nil
}
