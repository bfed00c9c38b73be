package geo

import (
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

//go:embed subdivisions.tsv
var subdivisionsTSV string

// Subdivision is one first-level subdivision of a covered country.
type Subdivision struct {
	// Code is the ISO 3166-2 code, for example "KH-12", "TH-10" or "CN-YN".
	Code string
	// Country is the ISO 3166-1 alpha-2 code of the country, for example "KH".
	Country string
	// Name is the English name, always in plain ASCII, for example "Bangkok".
	Name string
	// LocalName is the romanised name in the national language as ISO 3166-2
	// spells it, for example "Krung Thep Maha Nakhon"; it is empty when it
	// would be the same as Name.
	LocalName string
	// Kind is the subdivision category in lower case, for example "province",
	// "region", "state", "union territory" or "autonomous municipality".
	Kind string
}

// Country is one country covered by the directory.
type Country struct {
	// Code is the ISO 3166-1 alpha-2 code, for example "LA".
	Code string
	// Name is the ISO 3166-1 English short name, for example "Viet Nam".
	Name string
}

// countries lists the covered countries, sorted by code.
var countries = []Country{
	{Code: "CN", Name: "China"},
	{Code: "KH", Name: "Cambodia"},
	{Code: "LA", Name: "Lao People's Democratic Republic"},
	{Code: "MM", Name: "Myanmar"},
	{Code: "TH", Name: "Thailand"},
	{Code: "VN", Name: "Viet Nam"},
}

// tsvHeader is the first line the embedded data file must have.
const tsvHeader = "code\tcountry\tname\tlocal_name\tkind"

// codePattern is the shape every subdivision code must have.
var codePattern = regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,3}$`)

// table is the parsed, validated form of the data file.
type table struct {
	all       []Subdivision            // sorted by code
	byCode    map[string]int           // index into all
	byCountry map[string][]Subdivision // each sorted by code
}

// data is parsed once, when the package is initialised; the embedded file is
// checked by the tests, so a failure here is a build defect, not a run-time
// condition.
var data = mustParse(subdivisionsTSV)

func mustParse(text string) *table {
	t, err := parse(text)
	if err != nil {
		panic("geo: embedded subdivisions.tsv: " + err.Error())
	}
	return t
}

// parse reads the tab-separated data and validates every row.
func parse(text string) (*table, error) {
	lines := strings.Split(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 || strings.TrimSuffix(lines[0], "\r") != tsvHeader {
		return nil, fmt.Errorf("line 1: header must be %q", tsvHeader)
	}
	t := &table{
		byCode:    make(map[string]int),
		byCountry: make(map[string][]Subdivision),
	}
	for i, line := range lines[1:] {
		n := i + 2
		fields := strings.Split(strings.TrimSuffix(line, "\r"), "\t")
		if len(fields) != 5 {
			return nil, fmt.Errorf("line %d: %d fields, want 5", n, len(fields))
		}
		for _, f := range fields {
			if f != strings.TrimSpace(f) {
				return nil, fmt.Errorf("line %d: field %q has surrounding space", n, f)
			}
		}
		s := Subdivision{Code: fields[0], Country: fields[1], Name: fields[2], LocalName: fields[3], Kind: fields[4]}
		switch {
		case !codePattern.MatchString(s.Code):
			return nil, fmt.Errorf("line %d: malformed code %q", n, s.Code)
		case !KnownCountry(s.Country):
			return nil, fmt.Errorf("line %d: country %q is not covered", n, s.Country)
		case !strings.HasPrefix(s.Code, s.Country+"-"):
			return nil, fmt.Errorf("line %d: code %q is not in country %q", n, s.Code, s.Country)
		case s.Name == "":
			return nil, fmt.Errorf("line %d: empty name", n)
		case s.Kind == "":
			return nil, fmt.Errorf("line %d: empty kind", n)
		case s.LocalName == s.Name:
			return nil, fmt.Errorf("line %d: local_name repeats name; leave it empty", n)
		}
		if _, dup := t.byCode[s.Code]; dup {
			return nil, fmt.Errorf("line %d: duplicate code %q", n, s.Code)
		}
		t.byCode[s.Code] = -1
		t.all = append(t.all, s)
	}
	slices.SortFunc(t.all, func(a, b Subdivision) int { return strings.Compare(a.Code, b.Code) })
	for i, s := range t.all {
		t.byCode[s.Code] = i
		t.byCountry[s.Country] = append(t.byCountry[s.Country], s)
	}
	return t, nil
}

// Countries returns the covered countries sorted by code: CN, KH, LA, MM, TH
// and VN. The caller may modify the returned slice.
func Countries() []Country {
	return slices.Clone(countries)
}

// Subdivisions returns every subdivision sorted by code in byte order (so
// "KH-10" sorts before "KH-2"). The caller may modify the returned slice
// without affecting the directory.
func Subdivisions() []Subdivision {
	return slices.Clone(data.all)
}

// Lookup returns the subdivision with the given ISO 3166-2 code and true, or
// the zero Subdivision and false when the code is not in the directory. Codes
// are matched exactly, in upper case as ISO writes them.
func Lookup(code string) (Subdivision, bool) {
	i, ok := data.byCode[code]
	if !ok {
		return Subdivision{}, false
	}
	return data.all[i], true
}

// InCountry returns the subdivisions of the country with the given ISO 3166-1
// alpha-2 code, sorted by code, or nil when the country is not covered. The
// caller may modify the returned slice without affecting the directory.
func InCountry(country string) []Subdivision {
	return slices.Clone(data.byCountry[country])
}

// KnownCountry reports whether the ISO 3166-1 alpha-2 code (upper case) names
// one of the covered countries.
func KnownCountry(code string) bool {
	for _, c := range countries {
		if c.Code == code {
			return true
		}
	}
	return false
}
