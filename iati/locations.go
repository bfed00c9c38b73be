package iati

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// subRegion names the part of the world the exchange covers, for
// messages: the countries of the directory, China only through Yunnan
// and Guangxi (see package geo).
const subRegion = "the Mekong sub-region the exchange covers (KH, LA, MM, TH, VN, and China's CN-YN Yunnan and CN-GX Guangxi)"

// formerCodes maps ISO 3166-2 codes that ISO has replaced to the codes of
// the directory: ISO 3166-2:CN changed its numeric codes to letters in
// 2017, and older IATI files still use them.
var formerCodes = map[string]string{
	"CN-53": "CN-YN", // Yunnan
	"CN-45": "CN-GX", // Guangxi
}

// codeResult is what a location code says about a place.
type codeResult struct {
	sub     string // the directory's subdivision, or ""
	note    string // how an old code was mapped, or ""
	outside bool   // an ISO 3166-2 code of a country or province outside the sub-region
}

// resolveCode reads an ISO 3166-2 code: a subdivision of the directory,
// an absorbed Viet Nam unit or a replaced code mapped to the subdivision
// that took its place, or a code outside the sub-region.
func resolveCode(code string) codeResult {
	if !isoSubdivision(code) {
		return codeResult{}
	}
	if _, ok := geo.Lookup(code); ok {
		return codeResult{sub: code}
	}
	if a, ok := geo.Absorbed(code); ok {
		return codeResult{sub: a.Into.Code, note: a.String() + "; mapped to " + a.Into.Code}
	}
	if to, ok := formerCodes[code]; ok {
		return codeResult{sub: to, note: fmt.Sprintf("%s is the code ISO 3166-2 replaced with %s in 2017; mapped to %s", code, to, to)}
	}
	if !geo.KnownCountry(code[:2]) || code[:2] == "CN" {
		return codeResult{outside: true}
	}
	return codeResult{}
}

// provinceByName finds the province of the countries whose English or
// local name matches name: a whole-name match first, then one ignoring a
// trailing "province", "prefecture", "state"... When several match it
// returns no code and the candidates.
func provinceByName(name string, countries []string) (string, []geo.Subdivision) {
	full, key := fullKey(name), nameKey(name)
	if key == "" {
		return "", nil
	}
	var exact, loose []geo.Subdivision
	for _, c := range countries {
		for _, s := range geo.InCountry(c) {
			if fullKey(s.Name) == full || (s.LocalName != "" && fullKey(s.LocalName) == full) {
				exact = append(exact, s)
			}
			if nameKey(s.Name) == key || (s.LocalName != "" && nameKey(s.LocalName) == key) {
				loose = append(loose, s)
			}
		}
	}
	for _, found := range [][]geo.Subdivision{exact, loose} {
		switch {
		case len(found) == 1:
			return found[0].Code, nil
		case len(found) > 1:
			return "", found
		}
	}
	return "", nil
}

// recipientCountries reads the activity's recipient countries, or, when
// it gives none, those of its transactions (IATI 2.0x allows either).
// Countries outside the sub-region are reported and returned apart.
func (m *mapper) recipientCountries() (in, outside []string) {
	nodes := m.act.all("recipient-country")
	fromTransactions := len(nodes) == 0
	if fromTransactions {
		for _, t := range m.act.all("transaction") {
			nodes = append(nodes, t.all("recipient-country")...)
		}
	}
	for _, n := range nodes {
		code := strings.ToUpper(n.peek("code"))
		if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
			n.skip("not an ISO 3166-1 alpha-2 country code")
			continue
		}
		if !geo.KnownCountry(code) {
			n.skip(code + " is outside " + subRegion)
			if !slices.Contains(outside, code) {
				outside = append(outside, code)
			}
			continue
		}
		n.used = true
		n.attr("code")
		n.skipAttr("percentage", "a plan does not split its work between countries by percentage")
		if !slices.Contains(in, code) {
			in = append(in, code)
		}
	}
	if fromTransactions && len(in) > 0 {
		for _, t := range m.act.all("transaction") {
			if t.reason == "" {
				t.skip("financial transactions are not part of a plan; the recipient countries and sectors given on them were used")
			}
		}
	}
	return in, outside
}

func (m *mapper) locations() {
	countries, outside := m.recipientCountries()
	var refs []*exchangev1.LocationRef
	seen := map[string]bool{}
	add := func(ref *exchangev1.LocationRef) {
		k := ref.GetCountry() + "|" + ref.GetSubdivision() + "|" + ref.GetArea()
		if !seen[k] {
			seen[k] = true
			refs = append(refs, ref)
		}
	}
	lookIn := countries
	if len(lookIn) == 0 {
		for _, c := range geo.Countries() {
			lookIn = append(lookIn, c.Code)
		}
	}
	var dropped []string // why locations were left out, for the problem
	for _, loc := range m.act.all("location") {
		sub, note, outsideCode, unknownCode := "", "", "", ""
		take := func(n *node, attrs ...string) bool {
			code := strings.ToUpper(n.peek(attrs[0]))
			r := resolveCode(code)
			if r.sub == "" && !r.outside && isoSubdivision(code) && unknownCode == "" {
				unknownCode = code
			}
			if r.outside && outsideCode == "" {
				outsideCode = strings.ToUpper(n.peek(attrs[0]))
			}
			if r.sub == "" || sub != "" {
				return false
			}
			sub, note = r.sub, r.note
			n.used = true
			for _, a := range attrs {
				n.attr(a)
			}
			return true
		}
		// An ISO 3166-2 code in the administrative codes, the location
		// id or the location's own ref.
		for _, a := range loc.all("administrative") {
			take(a, "code", "vocabulary", "level")
		}
		for _, id := range loc.all("location-id") {
			if sub == "" {
				take(id, "code", "vocabulary")
			}
		}
		if sub == "" {
			ref := strings.ToUpper(loc.peek("ref"))
			r := resolveCode(ref)
			if r.sub == "" && !r.outside && isoSubdivision(ref) && unknownCode == "" {
				unknownCode = ref
			}
			if r.sub != "" {
				sub, note = r.sub, r.note
				loc.attr("ref")
			} else if r.outside && outsideCode == "" {
				outsideCode = strings.ToUpper(loc.peek("ref"))
			}
		}
		name := ""
		nameNode := loc.first("name")
		if nameNode != nil {
			name = strings.Join(strings.Fields(m.narrative(nameNode)), " ")
		}
		byName := false
		var candidates []geo.Subdivision
		if sub == "" && outsideCode == "" && name != "" {
			var code string
			if code, candidates = provinceByName(name, lookIn); code != "" {
				sub, byName = code, true
			}
		}
		if sub == "" {
			switch {
			case outsideCode != "":
				loc.skip(outsideCode + " is outside " + subRegion)
				dropped = append(dropped, loc.path+" "+outsideCode+" is outside it")
			case len(candidates) > 0:
				names := make([]string, len(candidates))
				for i, c := range candidates {
					names[i] = c.Code + " " + c.Name
				}
				reason := fmt.Sprintf("the place name %q is ambiguous: it names %s; give the province as administrative/@code", name, strings.Join(names, " or "))
				loc.skip(reason)
				dropped = append(dropped, loc.path+" "+reason)
			case unknownCode != "":
				loc.skip(unknownCode + " is not an ISO 3166-2 code of the exchange's directory, and the location's name names no province it knows; give the province as administrative/@code (for example KH-12)")
			default:
				loc.skip("no ISO 3166-2 province code and no province name the exchange knows; give the province as administrative/@code (for example KH-2)")
			}
			continue
		}
		if note != "" {
			m.shortened(loc.path, sub, note)
		}
		loc.used = true
		ref := &exchangev1.LocationRef{Country: sub[:2], Subdivision: sub}
		// Below the province: a district, named by the location's name.
		for _, a := range loc.all("administrative") {
			if lvl, err := strconv.Atoi(a.peek("level")); err == nil && lvl >= 2 && !byName {
				area := name
				if area == "" {
					area = a.peek("code")
				}
				if area != "" && utf8.RuneCountInString(area) <= 64 && ref.Area == "" {
					ref.Area = area
					a.used = true
					a.attr("level")
					a.attr("vocabulary")
					a.skipAttr("code", "the district is kept by name, not by this vocabulary's code")
					if nameNode != nil {
						nameNode.used = true
					}
				}
			}
		}
		if byName && nameNode != nil {
			nameNode.used = true
		}
		if nameNode != nil && !nameNode.used {
			nameNode.skip("the place name is kept only as a district name or to find the province")
		}
		add(ref)
		if !slices.Contains(countries, ref.Country) {
			countries = append(countries, ref.Country)
		}
	}
	// A country with no province named stands for all of it; China is in
	// the sub-region only through Yunnan and Guangxi.
	for _, c := range countries {
		has := false
		for _, r := range refs {
			has = has || r.Country == c
		}
		switch {
		case has:
		case c == "CN":
			for _, n := range m.act.all("recipient-country") {
				if strings.EqualFold(n.peek("code"), "CN") {
					n.used = false
					n.skip("China is in the sub-region only through Yunnan (CN-YN) and Guangxi (CN-GX): name the province in a location")
				}
			}
			dropped = append(dropped, "recipient-country CN without a location in Yunnan (CN-YN) or Guangxi (CN-GX)")
		default:
			add(&exchangev1.LocationRef{Country: c})
		}
	}
	if len(refs) > 200 {
		refs = refs[:200]
		m.shortened(m.act.path+"/location", "", "more than 200 locations; the rest are left out")
	}
	if len(refs) == 0 {
		switch {
		case len(outside) > 0 || len(dropped) > 0:
			why := dropped
			if len(outside) > 0 {
				why = append([]string{"recipient-country " + strings.Join(outside, ", ") + " outside it"}, why...)
			}
			m.problem("no location in %s: %s", subRegion, strings.Join(why, "; "))
		default:
			m.problem("no recipient-country and no location with a province: a plan needs a location")
		}
	}
	m.plan.Locations = refs
}
