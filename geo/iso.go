package geo

import (
	_ "embed"
	"strings"
)

// iso3166TSV lists every ISO 3166-1 alpha-2 code with its English short
// name, taken from Debian's iso-codes package (see the file's header).
//
//go:embed iso3166-1.tsv
var iso3166TSV string

var isoCountries = parseISO(iso3166TSV)

func parseISO(text string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		code, name, ok := strings.Cut(line, "\t")
		if !ok || len(code) != 2 {
			panic("geo: malformed line in iso3166-1.tsv: " + line)
		}
		out[code] = name
	}
	return out
}

// ISOCountry returns the English short name of an ISO 3166-1 alpha-2
// country code, for any country in the world (not only those whose
// provinces the exchange ships); false for a code ISO does not assign.
func ISOCountry(code string) (string, bool) {
	name, ok := isoCountries[code]
	return name, ok
}
