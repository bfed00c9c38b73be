package geo

import (
	_ "embed"
	"fmt"
	"strings"
)

// Edition names the edition of ISO 3166-2 the directory follows, and
// VietNamReorganisation the reorganisation it follows for Viet Nam (see
// the package documentation and docs/operations.md, "Locations").
const (
	Edition               = "ISO 3166-2 as in Debian iso-codes 4.20.1 (KH-19 Stueng Traeng, iso-codes 4.19 and later)"
	VietNamReorganisation = "Viet Nam: the 34 provincial-level units in force since 1 July 2025 (National Assembly Resolution 202/2025/QH15 of 12 June 2025); the 29 codes of the units it absorbed are refused, naming the unit that absorbed each"
)

// Absorption is a provincial-level unit that no longer exists because
// another absorbed it, and which one.
type Absorption struct {
	// Code is the unit's ISO 3166-2 code, for example "VN-57".
	Code string
	// Name is its English name in plain ASCII, for example "Binh Duong".
	Name string
	// LocalName is its name as ISO 3166-2 spells it, for example
	// "Bình Dương"; empty when it would equal Name.
	LocalName string
	// Into is the subdivision of the directory that absorbed it.
	Into Subdivision
	// Since is the date the absorption took effect, YYYY-MM-DD.
	Since string
	// By is the act that decided it.
	By string
}

// String says what became of the unit: "VN-57 Binh Duong was absorbed
// into VN-SG Ho Chi Minh City on 2025-07-01 (National Assembly Resolution
// 202/2025/QH15)".
func (a Absorption) String() string {
	return fmt.Sprintf("%s %s was absorbed into %s %s on %s (%s)", a.Code, a.Name, a.Into.Code, a.Into.Name, a.Since, a.By)
}

//go:embed absorbed.tsv
var absorbedTSV string

// absorbed maps the code of each absorbed unit to its absorption.
var absorbed = mustParseAbsorbed(absorbedTSV)

// Viet Nam's 2025 reorganisation: Resolution 202/2025/QH15 of the National
// Assembly, passed on 12 June 2025, effective 1 July 2025.
const (
	vietNamSince = "2025-07-01"
	vietNamBy    = "National Assembly Resolution 202/2025/QH15"
)

func mustParseAbsorbed(text string) map[string]Absorption {
	m, err := parseAbsorbed(text)
	if err != nil {
		panic("geo: embedded absorbed.tsv: " + err.Error())
	}
	return m
}

// parseAbsorbed reads absorbed.tsv: code, name, local_name and the code
// of the unit that absorbed it, which must be in the directory while the
// absorbed code must not.
func parseAbsorbed(text string) (map[string]Absorption, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) == 0 || lines[0] != "code\tname\tlocal_name\tinto" {
		return nil, fmt.Errorf("line 1: header must be %q", "code\tname\tlocal_name\tinto")
	}
	out := map[string]Absorption{}
	for i, line := range lines[1:] {
		n := i + 2
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("line %d: %d fields, want 4", n, len(f))
		}
		into, ok := Lookup(f[3])
		switch {
		case !codePattern.MatchString(f[0]) || !strings.HasPrefix(f[0], "VN-"):
			return nil, fmt.Errorf("line %d: %q is not a code of Viet Nam", n, f[0])
		case !ok:
			return nil, fmt.Errorf("line %d: %s is not in the directory", n, f[3])
		case f[1] == "":
			return nil, fmt.Errorf("line %d: empty name", n)
		}
		if _, still := Lookup(f[0]); still {
			return nil, fmt.Errorf("line %d: %s is still in the directory", n, f[0])
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("line %d: duplicate code %s", n, f[0])
		}
		local := f[2]
		if local == f[1] {
			local = ""
		}
		out[f[0]] = Absorption{Code: f[0], Name: f[1], LocalName: local, Into: into, Since: vietNamSince, By: vietNamBy}
	}
	return out, nil
}

// Absorbed returns what became of a code that is not in the directory
// because its unit was absorbed into another (Viet Nam's 2025
// reorganisation), and true; false for any other code. Importers use it
// to map old codes to the unit that absorbed them, and the exchange to
// name that unit when it refuses an old code.
func Absorbed(code string) (Absorption, bool) {
	a, ok := absorbed[code]
	return a, ok
}
