package cli

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// enumNames maps the values of a protobuf enum to the names flags use: the
// value name without the enum's prefix, lowercase, with hyphens
// (NICHE_RETURN_AND_REINTEGRATION is "return-and-reintegration"). The zero
// _UNSPECIFIED value has no flag name.
type enumNames struct {
	// what names the enum in messages, for example "niche".
	what   string
	prefix string
	desc   protoreflect.EnumDescriptor
}

// Flag names of the enums exchangectl takes or prints.
var (
	nicheNames            = enumNames{"niche", "NICHE_", exchangev1.Niche(0).Descriptor()}
	agencyKindNames       = enumNames{"agency kind", "AGENCY_KIND_", exchangev1.AgencyKind(0).Descriptor()}
	agencyStateNames      = enumNames{"agency state", "AGENCY_STATE_", exchangev1.AgencyState(0).Descriptor()}
	workingGroupKindNames = enumNames{"working group kind", "WORKING_GROUP_KIND_", exchangev1.WorkingGroupKind(0).Descriptor()}
	membershipRoleNames   = enumNames{"membership role", "MEMBERSHIP_ROLE_", exchangev1.MembershipRole(0).Descriptor()}
	certStateNames        = enumNames{"certificate state", "CERTIFICATE_STATE_", exchangev1.CertificateState(0).Descriptor()}
)

// name returns the flag name of n, "" for the zero value, or the number for
// a value this build does not know.
func (e enumNames) name(n protoreflect.EnumNumber) string {
	if n == 0 {
		return ""
	}
	v := e.desc.Values().ByNumber(n)
	if v == nil {
		return fmt.Sprint(int32(n))
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(string(v.Name()), e.prefix)), "_", "-")
}

// values returns every flag name, in number order.
func (e enumNames) values() []string {
	var out []string
	for i := range e.desc.Values().Len() {
		if n := e.desc.Values().Get(i).Number(); n != 0 {
			out = append(out, e.name(n))
		}
	}
	return out
}

// parse returns the value named s. It also accepts underscores, any case and
// the full enum value name.
func (e enumNames) parse(s string) (protoreflect.EnumNumber, error) {
	norm := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
	norm = strings.TrimPrefix(norm, strings.ReplaceAll(strings.ToLower(e.prefix), "_", "-"))
	for i := range e.desc.Values().Len() {
		n := e.desc.Values().Get(i).Number()
		if n != 0 && e.name(n) == norm {
			return n, nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q; valid: %s", e.what, s, strings.Join(e.values(), ", "))
}

// enumValue is a flag holding one enum value.
type enumValue[E ~int32] struct {
	names  enumNames
	target *E
}

// newEnumFlag defines a flag for one value of an enum.
func newEnumFlag[E ~int32](f *pflag.FlagSet, target *E, name string, names enumNames, usage string) {
	f.Var(&enumValue[E]{names, target}, name, usage+": "+strings.Join(names.values(), ", "))
}

func (v *enumValue[E]) String() string { return v.names.name(protoreflect.EnumNumber(*v.target)) }
func (v *enumValue[E]) Type() string   { return strings.ReplaceAll(v.names.what, " ", "-") }
func (v *enumValue[E]) Set(s string) error {
	if s == "" {
		*v.target = 0
		return nil
	}
	n, err := v.names.parse(s)
	if err != nil {
		return err
	}
	*v.target = E(n)
	return nil
}

// enumSliceValue is a repeatable flag holding a list of enum values; each
// use may also carry a comma-separated list, and an empty value clears the
// list.
type enumSliceValue[E ~int32] struct {
	names  enumNames
	target *[]E
}

// newEnumSliceFlag defines a repeatable flag for a list of enum values.
func newEnumSliceFlag[E ~int32](f *pflag.FlagSet, target *[]E, name string, names enumNames, usage string) {
	f.Var(&enumSliceValue[E]{names, target}, name, usage+" (repeatable or comma-separated): "+strings.Join(names.values(), ", "))
}

func (v *enumSliceValue[E]) String() string {
	var names []string
	for _, e := range *v.target {
		names = append(names, v.names.name(protoreflect.EnumNumber(e)))
	}
	return strings.Join(names, ",")
}
func (v *enumSliceValue[E]) Type() string { return strings.ReplaceAll(v.names.what, " ", "-") }
func (v *enumSliceValue[E]) Set(s string) error {
	if *v.target == nil {
		*v.target = []E{}
	}
	for part := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		n, err := v.names.parse(part)
		if err != nil {
			return err
		}
		*v.target = append(*v.target, E(n))
	}
	return nil
}

// dateValue is a flag holding a calendar date, YYYY-MM-DD.
type dateValue struct{ target **exchangev1.CalendarDate }

// newDateFlag defines a YYYY-MM-DD flag.
func newDateFlag(f *pflag.FlagSet, target **exchangev1.CalendarDate, name, usage string) {
	f.Var(dateValue{target}, name, usage)
}

func (v dateValue) String() string { return formatDate(*v.target) }
func (v dateValue) Type() string   { return "YYYY-MM-DD" }
func (v dateValue) Set(s string) error {
	d, err := parseDate(s)
	if err != nil {
		return err
	}
	*v.target = d
	return nil
}

// parseDate parses YYYY-MM-DD.
func parseDate(s string) (*exchangev1.CalendarDate, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return nil, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return client.CalendarDate(t), nil
}

// formatDate formats d as YYYY-MM-DD, or "" for nil.
func formatDate(d *exchangev1.CalendarDate) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf("%04d-%02d-%02d", d.GetYear(), d.GetMonth(), d.GetDay())
}

// Syntax of the ids and codes exchangectl takes as arguments.
var (
	workingGroupIDPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}[a-z0-9]$`)
	focalPointIDPattern   = regexp.MustCompile(`^[0-9a-z]{26}$`)
	countryPattern        = regexp.MustCompile(`^[A-Z]{2}$`)
	subdivisionPattern    = regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,3}$`)
	topicPattern          = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	serialPattern         = regexp.MustCompile(`^[0-9a-f]{1,40}$`)
)

// agencyID accepts "ilo" or "agencies/ilo" and returns the id "ilo".
func agencyID(s string) (string, error) {
	id := strings.TrimPrefix(s, "agencies/")
	if !pki.ValidAgencyID(id) {
		return "", usageErrorf("invalid agency id %q: want 3 to 40 lowercase letters, digits and hyphens, starting with a letter", s)
	}
	return id, nil
}

// agencyNames applies agencyID to each of ids and returns the resource
// names.
func agencyNames(ids []string) ([]string, error) {
	var names []string
	for _, s := range ids {
		id, err := agencyID(s)
		if err != nil {
			return nil, err
		}
		names = append(names, client.AgencyName(id))
	}
	return names, nil
}

// workingGroupID accepts "un-wg" or "workingGroups/un-wg" and returns the
// id.
func workingGroupID(s string) (string, error) {
	id := strings.TrimPrefix(s, "workingGroups/")
	if !workingGroupIDPattern.MatchString(id) {
		return "", usageErrorf("invalid working group id %q: want 3 to 64 lowercase letters, digits and hyphens, starting with a letter", s)
	}
	return id, nil
}

// focalPointName accepts "agencies/ilo/focalPoints/ID" or "ilo/ID" and
// returns the full resource name.
func focalPointName(s string) (string, error) {
	rest := strings.TrimPrefix(s, "agencies/")
	agency, id, ok := strings.Cut(rest, "/")
	if ok {
		id = strings.TrimPrefix(id, "focalPoints/")
	}
	if !ok || !pki.ValidAgencyID(agency) || !focalPointIDPattern.MatchString(id) {
		return "", usageErrorf("invalid focal point name %q: want agencies/AGENCY/focalPoints/ID (as 'focal-points list' shows) or AGENCY/ID", s)
	}
	return client.FocalPointName(agency, id), nil
}

// countryCode upper-cases and checks an ISO 3166-1 alpha-2 code.
func countryCode(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if !countryPattern.MatchString(c) {
		return "", usageErrorf("invalid country %q: want an ISO 3166-1 alpha-2 code such as KH", s)
	}
	return c, nil
}

// countryCodes applies countryCode to each of list.
func countryCodes(list []string) ([]string, error) {
	out := []string{}
	for _, s := range list {
		c, err := countryCode(s)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// subdivisionCode upper-cases and checks an ISO 3166-2 code such as KH-12.
func subdivisionCode(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(strings.TrimPrefix(s, "locations/")))
	if !subdivisionPattern.MatchString(c) {
		return "", usageErrorf("invalid province %q: want an ISO 3166-2 code such as KH-12", s)
	}
	return c, nil
}

// locationRefs turns "KH" (a whole country) and "KH-12" (a province) into
// location references.
func locationRefs(list []string) ([]*exchangev1.LocationRef, error) {
	out := []*exchangev1.LocationRef{}
	for _, s := range list {
		if c, err := countryCode(s); err == nil {
			out = append(out, &exchangev1.LocationRef{Country: c})
			continue
		}
		sub, err := subdivisionCode(s)
		if err != nil {
			return nil, usageErrorf("invalid coverage %q: want a country (KH) or a province (KH-12)", s)
		}
		out = append(out, &exchangev1.LocationRef{Country: sub[:2], Subdivision: sub})
	}
	return out, nil
}

// certificateSerial accepts "1f3a" or "certificates/1f3a" (any case, colons
// allowed) and returns the canonical lowercase serial.
func certificateSerial(s string) (string, error) {
	serial := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s, "certificates/"), ":", ""))
	if !serialPattern.MatchString(serial) {
		return "", usageErrorf("invalid certificate serial %q: want up to 40 hex digits, as 'certs list' shows", s)
	}
	return serial, nil
}

// exactArgs requires one argument per name.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) == len(names):
			return nil
		case len(names) == 0:
			return usageErrorf("unexpected argument %q: this command takes flags only", args[0])
		case len(args) < len(names):
			return usageErrorf("missing argument %s", names[len(args)])
		default:
			return usageErrorf("too many arguments: want %d (%s), got %d", len(names), strings.Join(names, " "), len(args))
		}
	}
}
