package server

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// This file holds the rules a dataset's schema imposes: on the definition
// itself, on changes to it, and on every row written.

var periodForms = map[exchangev1.PeriodType]*regexp.Regexp{
	exchangev1.PeriodType_PERIOD_TYPE_MONTH:       regexp.MustCompile(`^(\d{4})-(0[1-9]|1[0-2])$`),
	exchangev1.PeriodType_PERIOD_TYPE_QUARTER:     regexp.MustCompile(`^(\d{4})-Q([1-4])$`),
	exchangev1.PeriodType_PERIOD_TYPE_YEAR:        regexp.MustCompile(`^(\d{4})$`),
	exchangev1.PeriodType_PERIOD_TYPE_FISCAL_YEAR: regexp.MustCompile(`^FY(\d{4})$`),
}

var periodExamples = map[exchangev1.PeriodType]string{
	exchangev1.PeriodType_PERIOD_TYPE_MONTH:       "2026-03",
	exchangev1.PeriodType_PERIOD_TYPE_QUARTER:     "2026-Q1",
	exchangev1.PeriodType_PERIOD_TYPE_YEAR:        "2026",
	exchangev1.PeriodType_PERIOD_TYPE_FISCAL_YEAR: "FY2026",
}

// checkPeriodLabel checks a period label against the dataset's period
// type.
func checkPeriodLabel(field string, d *exchangev1.Dataset, label string) error {
	if !periodForms[d.GetPeriodType()].MatchString(label) {
		return invalidField(field, fmt.Sprintf("%q is not a period of this dataset (form %s)", label, periodExamples[d.GetPeriodType()]))
	}
	return nil
}

var (
	countryCode  = regexp.MustCompile(`^[A-Z]{2}$`)
	provinceCode = regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,3}$`)
	districtCode = regexp.MustCompile(`^([A-Z]{2}-[A-Z0-9]{1,3})\.[A-Za-z0-9-]{1,16}$`)
)

// checkLocationCode checks a location code at the schema's level; for the
// countries whose provinces the exchange ships, the province must exist.
func checkLocationCode(field string, level exchangev1.AdminLevel, code string) error {
	province := ""
	switch level {
	case exchangev1.AdminLevel_ADMIN_LEVEL_COUNTRY:
		if !countryCode.MatchString(code) {
			return invalidField(field, fmt.Sprintf("%q is not a country code (ISO 3166-1 alpha-2, like KH)", code))
		}
		return checkCountry(field, code)
	case exchangev1.AdminLevel_ADMIN_LEVEL_PROVINCE:
		if !provinceCode.MatchString(code) {
			return invalidField(field, fmt.Sprintf("%q is not a province code (ISO 3166-2, like KH-12)", code))
		}
		province = code
	case exchangev1.AdminLevel_ADMIN_LEVEL_DISTRICT:
		m := districtCode.FindStringSubmatch(code)
		if m == nil {
			return invalidField(field, fmt.Sprintf("%q is not a district code (province, dot, national code, like KH-12.1201)", code))
		}
		province = m[1]
	}
	if geo.KnownCountry(province[:2]) {
		if _, ok := geo.Lookup(province); !ok {
			return invalidField(field, unknownProvince(province, ""))
		}
	}
	return nil
}

// checkDatasetDefinition checks what protovalidate cannot in a definition.
func checkDatasetDefinition(field string, d *exchangev1.Dataset) error {
	for i, m := range d.GetSchema().GetMeasures() {
		if m.Min != nil && m.Max != nil && m.GetMin() > m.GetMax() {
			return invalidField(fmt.Sprintf("%s.schema.measures[%d].max", field, i), "must not be below min")
		}
	}
	for i, code := range d.GetExpectedLocations() {
		if err := checkLocationCode(fmt.Sprintf("%s.expected_locations[%d]", field, i), d.GetSchema().GetLocationLevel(), code); err != nil {
			return err
		}
	}
	return nil
}

// checkSchemaChange refuses a schema change that could invalidate stored
// rows: only titles, HXL tags, new optional categories and measures, new
// allowed values and codes, and wider bounds are allowed.
func checkSchemaChange(field string, old, next *exchangev1.Dataset) error {
	os, ns := old.GetSchema(), next.GetSchema()
	if os.GetLocationLevel() != ns.GetLocationLevel() {
		return invalidField(field+".schema.location_level", "the location level cannot change")
	}
	for _, oc := range os.GetCategories() {
		i := slices.IndexFunc(ns.GetCategories(), func(c *exchangev1.Category) bool { return c.GetKey() == oc.GetKey() })
		f := fmt.Sprintf("%s.schema.categories[%d]", field, i)
		switch {
		case i < 0:
			return invalidField(field+".schema.categories", "category "+oc.GetKey()+" cannot be removed")
		case ns.GetCategories()[i].GetRequired() && !oc.GetRequired():
			return invalidField(f+".required", "an existing category cannot become required")
		}
		for _, v := range oc.GetValues() {
			if !slices.Contains(ns.GetCategories()[i].GetValues(), v) {
				return invalidField(f+".values", "allowed value "+v+" cannot be removed")
			}
		}
	}
	for i, nc := range ns.GetCategories() {
		if nc.GetRequired() && !slices.ContainsFunc(os.GetCategories(), func(c *exchangev1.Category) bool { return c.GetKey() == nc.GetKey() }) {
			return invalidField(fmt.Sprintf("%s.schema.categories[%d].required", field, i), "a new category must be optional")
		}
	}
	for _, om := range os.GetMeasures() {
		i := slices.IndexFunc(ns.GetMeasures(), func(m *exchangev1.Measure) bool { return m.GetKey() == om.GetKey() })
		if i < 0 {
			return invalidField(field+".schema.measures", "measure "+om.GetKey()+" cannot be removed")
		}
		nm, f := ns.GetMeasures()[i], fmt.Sprintf("%s.schema.measures[%d]", field, i)
		switch {
		case nm.GetType() != om.GetType():
			return invalidField(f+".type", "the type of measure "+om.GetKey()+" cannot change")
		case nm.GetRequired() && !om.GetRequired():
			return invalidField(f+".required", "an existing measure cannot become required")
		case nm.Min != nil && (om.Min == nil || nm.GetMin() > om.GetMin()):
			return invalidField(f+".min", "bounds may only widen")
		case nm.Max != nil && (om.Max == nil || nm.GetMax() < om.GetMax()):
			return invalidField(f+".max", "bounds may only widen")
		case textLimit(nm) < textLimit(om):
			return invalidField(f+".max_length", "bounds may only widen")
		}
		for _, c := range om.GetCodes() {
			if !slices.Contains(nm.GetCodes(), c) {
				return invalidField(f+".codes", "code "+c+" cannot be removed")
			}
		}
	}
	for i, nm := range ns.GetMeasures() {
		if nm.GetRequired() && !slices.ContainsFunc(os.GetMeasures(), func(m *exchangev1.Measure) bool { return m.GetKey() == nm.GetKey() }) {
			return invalidField(fmt.Sprintf("%s.schema.measures[%d].required", field, i), "a new measure must be optional")
		}
	}
	return nil
}

func textLimit(m *exchangev1.Measure) int {
	if m.GetMaxLength() == 0 {
		return 1000
	}
	return int(m.GetMaxLength())
}

// rowViolations checks one row against the dataset's schema and returns
// its violations in the order of their fields, prefixed by field
// ("writes[3].row"): categories by key, location, period, values by key.
// With limit above 0 it stops after the first limit of them: a batch
// whose answer lists all it may checks its remaining rows up to their
// first violation (batch_violations.go), which is the first of all.
func rowViolations(field string, d *exchangev1.Dataset, row *exchangev1.Row, deleting bool, limit int) []*exchangev1.FieldViolation {
	var out []*exchangev1.FieldViolation
	full := func() bool { return limit > 0 && len(out) >= limit }
	add := func(f, msg string) { out = append(out, &exchangev1.FieldViolation{Field: f, Description: msg}) }
	addErr := func(err error) {
		var e *store.Error
		if errors.As(err, &e) {
			add(e.Field, strings.TrimPrefix(e.Message, e.Field+": "))
		}
	}
	categories := d.GetSchema().GetCategories()
	for _, key := range keysWithRequired(row.GetCategories(), categories, func(c *exchangev1.Category) (string, bool) { return c.GetKey(), c.GetRequired() }) {
		v := row.GetCategories()[key]
		i := slices.IndexFunc(categories, func(c *exchangev1.Category) bool { return c.GetKey() == key })
		switch {
		case i < 0:
			add(field+".categories."+key, "no such category in the schema")
		case v != "" && !slices.Contains(categories[i].GetValues(), v):
			add(field+".categories."+key, fmt.Sprintf("%q is not an allowed value (%s)", v, listText(categories[i].GetValues(), maxBatchViolationTextBytes)))
		case v == "" && categories[i].GetRequired():
			add(field+".categories."+key, "required")
		}
		if full() {
			return out
		}
	}
	if addErr(checkLocationCode(field+".location", d.GetSchema().GetLocationLevel(), row.GetLocation())); full() {
		return out
	}
	if addErr(checkPeriodLabel(field+".period", d, row.GetPeriod())); full() || deleting {
		return out
	}
	measures := d.GetSchema().GetMeasures()
	for _, key := range keysWithRequired(row.GetValues(), measures, func(m *exchangev1.Measure) (string, bool) { return m.GetKey(), m.GetRequired() }) {
		v, given := row.GetValues()[key]
		i := slices.IndexFunc(measures, func(m *exchangev1.Measure) bool { return m.GetKey() == key })
		switch {
		case i < 0:
			add(field+".values."+key, "no such measure in the schema")
		case !given:
			add(field+".values."+key, "required")
		default:
			if msg := valueViolation(measures[i], v); msg != "" {
				add(field+".values."+key, msg)
			}
		}
		if full() {
			return out
		}
	}
	return out
}

// listText prints values as fmt's %v does ("[female male]"), cut with an
// ellipsis once it passes limit bytes: a category may allow a hundred
// values of 64 bytes, and a batch's answer cuts a description at
// maxBatchViolationTextBytes anyway.
func listText(values []string, limit int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range values {
		if i > 0 {
			b.WriteByte(' ')
		}
		if b.Len() > limit {
			b.WriteString("…")
			break
		}
		b.WriteString(v)
	}
	b.WriteByte(']')
	return b.String()
}

// keysWithRequired returns, sorted, the keys of a row's map and those of
// the schema's required columns (keyOf gives a column's key and whether it
// is required) that the map lacks.
func keysWithRequired[V, C any](given map[string]V, columns []C, keyOf func(C) (string, bool)) []string {
	keys := make([]string, 0, len(given)+len(columns))
	for k := range given {
		keys = append(keys, k)
	}
	for _, c := range columns {
		if k, required := keyOf(c); required {
			if _, ok := given[k]; !ok {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// valueViolation says what is wrong with a value for a measure, or "".
func valueViolation(m *exchangev1.Measure, v *exchangev1.Value) string {
	inRange := func(x float64) string {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "must be a finite number"
		}
		if m.Min != nil && x < m.GetMin() {
			return "must be at least " + strconv.FormatFloat(m.GetMin(), 'g', -1, 64)
		}
		if m.Max != nil && x > m.GetMax() {
			return "must be at most " + strconv.FormatFloat(m.GetMax(), 'g', -1, 64)
		}
		return ""
	}
	switch m.GetType() {
	case exchangev1.MeasureType_MEASURE_TYPE_INTEGER:
		if x, ok := v.GetKind().(*exchangev1.Value_IntValue); ok {
			return inRange(float64(x.IntValue))
		}
	case exchangev1.MeasureType_MEASURE_TYPE_DECIMAL:
		if x, ok := v.GetKind().(*exchangev1.Value_DecimalValue); ok {
			return inRange(x.DecimalValue)
		}
	case exchangev1.MeasureType_MEASURE_TYPE_TEXT:
		if x, ok := v.GetKind().(*exchangev1.Value_TextValue); ok {
			if len([]rune(x.TextValue)) > textLimit(m) {
				return fmt.Sprintf("longer than %d characters", textLimit(m))
			}
			return ""
		}
	case exchangev1.MeasureType_MEASURE_TYPE_DATE:
		if x, ok := v.GetKind().(*exchangev1.Value_DateValue); ok {
			d := x.DateValue
			t := time.Date(int(d.GetYear()), time.Month(d.GetMonth()), int(d.GetDay()), 0, 0, 0, 0, time.UTC)
			if d.GetMonth() < 1 || d.GetMonth() > 12 || t.Day() != int(d.GetDay()) || d.GetYear() < 1900 {
				return "no such date"
			}
			return ""
		}
	case exchangev1.MeasureType_MEASURE_TYPE_BOOLEAN:
		if _, ok := v.GetKind().(*exchangev1.Value_BoolValue); ok {
			return ""
		}
	case exchangev1.MeasureType_MEASURE_TYPE_CODE:
		if x, ok := v.GetKind().(*exchangev1.Value_CodeValue); ok {
			if !slices.Contains(m.GetCodes(), x.CodeValue) {
				return fmt.Sprintf("%q is not in the code list", x.CodeValue)
			}
			return ""
		}
	}
	return "must be a " + typeName(m.GetType()) + " value"
}

func typeName(t exchangev1.MeasureType) string {
	return map[exchangev1.MeasureType]string{
		exchangev1.MeasureType_MEASURE_TYPE_INTEGER: "integer", exchangev1.MeasureType_MEASURE_TYPE_DECIMAL: "decimal",
		exchangev1.MeasureType_MEASURE_TYPE_TEXT: "text", exchangev1.MeasureType_MEASURE_TYPE_DATE: "date",
		exchangev1.MeasureType_MEASURE_TYPE_BOOLEAN: "boolean", exchangev1.MeasureType_MEASURE_TYPE_CODE: "code",
	}[t]
}
