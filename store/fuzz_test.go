package store

import (
	"maps"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// rowKeyAllowsNUL: RowKey joins its parts with zero bytes, so values with a
// zero byte could make two rows share a key. The API forbids control
// characters in category values (dataset.proto), and periods, locations
// and contributors have patterns without them, so RowKey never sees one;
// true keeps FuzzRowKey to the inputs the API lets through.
const rowKeyAllowsNUL = true

// categoryKey is the shape schema category keys must have.
var categoryKey = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// keyOf is what identifies a row: RowKey must give two rows the same key
// exactly when these are equal.
type rowIdentity struct {
	period, location, contributor string
	categories                    map[string]string
}

func identityOf(r *exchangev1.Row) rowIdentity {
	id := rowIdentity{r.GetPeriod(), r.GetLocation(), strings.TrimPrefix(r.GetContributor(), AgencyPrefix), map[string]string{}}
	for k, v := range r.GetCategories() {
		if v != "" {
			id.categories[k] = v
		}
	}
	return id
}

func (a rowIdentity) equal(b rowIdentity) bool {
	return a.period == b.period && a.location == b.location && a.contributor == b.contributor && maps.Equal(a.categories, b.categories)
}

// admissible reports whether a row could reach the store through the
// server: periods, locations and contributors match patterns without zero
// bytes, and category keys are schema keys.
func admissible(r *exchangev1.Row) bool {
	for _, s := range []string{r.GetPeriod(), r.GetLocation(), r.GetContributor()} {
		if strings.ContainsRune(s, 0) {
			return false
		}
	}
	for k, v := range r.GetCategories() {
		if !categoryKey.MatchString(k) || rowKeyAllowsNUL && strings.ContainsRune(v, 0) {
			return false
		}
	}
	return true
}

// FuzzRowKey checks that RowKey tells rows apart: two rows the server
// could store have the same key only when they are the same row (period,
// location, contributor and non-empty category values), so that writing
// one never overwrites another.
func FuzzRowKey(f *testing.F) {
	seed := func(a, b *exchangev1.Row) {
		ab, _ := proto.Marshal(a)
		bb, _ := proto.Marshal(b)
		f.Add(ab, bb)
	}
	row := func(cats map[string]string) *exchangev1.Row {
		return &exchangev1.Row{Period: "2026-01", Location: "KH-12", Contributor: "agencies/ilo", Categories: cats}
	}
	seed(row(map[string]string{"sex": "female"}), row(map[string]string{"sex": "male"}))
	seed(row(map[string]string{"sex": "female", "age": ""}), row(map[string]string{"sex": "female"}))
	seed(row(map[string]string{"a": "x=b", "b": "y"}), row(map[string]string{"a": "x", "b": "y"}))
	seed(row(map[string]string{"a": "x", "b": "y"}), row(map[string]string{"a": "x\x00b=y"}))
	seed(&exchangev1.Row{Period: "2026", Location: "KH"}, &exchangev1.Row{Period: "2026-KH"})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ra, rb := new(exchangev1.Row), new(exchangev1.Row)
		if proto.Unmarshal(a, ra) != nil || proto.Unmarshal(b, rb) != nil || !admissible(ra) || !admissible(rb) {
			return
		}
		ka, kb := string(RowKey(ra)), string(RowKey(rb))
		if again := string(RowKey(proto.Clone(ra).(*exchangev1.Row))); again != ka {
			t.Fatalf("RowKey is not deterministic: %q, then %q", ka, again)
		}
		if same := identityOf(ra).equal(identityOf(rb)); same != (ka == kb) {
			t.Fatalf("rows %v and %v: same row %v, same key %v (%q, %q)", ra, rb, same, ka == kb, ka, kb)
		}
	})
}
