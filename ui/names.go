package ui

import (
	"cmp"
	"errors"
	"html/template"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// templateFuncs are the functions templates may call.
var templateFuncs = template.FuncMap{
	"id":        client.ResourceID,
	"dict":      dict,
	"join":      func(s []string) string { return strings.Join(s, ", ") },
	"niches":    nicheList,
	"locations": locationsText,
	"period":    func(p *exchangev1.DatePeriod) string { return dateText(p.GetStart()) + " to " + dateText(p.GetEnd()) },
}

// enumText is an enum value as exchangectl writes it: without the type's
// prefix, lowercase, with hyphens (NICHE_LEGAL_AID is "legal-aid").
func enumText(s enumValue, prefix string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.String(), prefix)), "_", "-")
}

// enumValue is a protobuf enum value.
type enumValue interface{ String() string }

// nicheText is a niche's short name.
func nicheText(n exchangev1.Niche) string { return enumText(n, "NICHE_") }

// stateText is a referral state's short name.
func stateText(s exchangev1.ReferralState) string { return enumText(s, "REFERRAL_STATE_") }

// nicheList joins niches' short names with ", ".
func nicheList(ns []exchangev1.Niche) string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, nicheText(n))
	}
	return strings.Join(out, ", ")
}

// idList joins the ids of resource names with ", ".
func idList(names []string) string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, client.ResourceID(n))
	}
	return strings.Join(out, ", ")
}

// timeText is a timestamp in UTC to the minute, "" when unset.
func timeText(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format("2006-01-02 15:04 UTC")
}

// dateText is a calendar date as YYYY-MM-DD, "" when unset.
func dateText(d *exchangev1.CalendarDate) string {
	if d == nil || d.GetYear() == 0 {
		return ""
	}
	return time.Date(int(d.GetYear()), time.Month(d.GetMonth()), int(d.GetDay()), 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
}

// locationText is "KH-12", "KH" for a whole country, with an area after
// a space.
func locationText(l *exchangev1.LocationRef) string {
	s := cmp.Or(l.GetSubdivision(), l.GetCountry())
	if l.GetArea() != "" {
		s += " " + l.GetArea()
	}
	return s
}

// locationsText joins locations with ", ".
func locationsText(ls []*exchangev1.LocationRef) string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, locationText(l))
	}
	return strings.Join(out, ", ")
}

// dict builds a map from alternating keys and values, to pass several
// values to a nested template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, errors.New("dict: keys must be strings")
		}
		m[k] = kv[i+1]
	}
	return m, nil
}
