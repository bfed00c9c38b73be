package geo

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestCountries(t *testing.T) {
	got := Countries()
	var codes []string
	for _, c := range got {
		codes = append(codes, c.Code)
		if c.Name == "" {
			t.Errorf("country %s has no name", c.Code)
		}
		if !KnownCountry(c.Code) {
			t.Errorf("KnownCountry(%q) = false", c.Code)
		}
	}
	want := []string{"CN", "KH", "LA", "MM", "TH", "VN"}
	if !slices.Equal(codes, want) {
		t.Fatalf("Countries codes = %v, want %v", codes, want)
	}
	got[0].Name = "changed"
	if Countries()[0].Name == "changed" {
		t.Error("mutating the result of Countries changed the directory")
	}
}

func TestCountsPerCountry(t *testing.T) {
	want := map[string]int{"CN": 2, "KH": 25, "LA": 18, "MM": 15, "TH": 78, "VN": 34}
	total := 0
	for country, n := range want {
		if got := len(InCountry(country)); got != n {
			t.Errorf("len(InCountry(%q)) = %d, want %d", country, got, n)
		}
		total += n
	}
	if got := len(Subdivisions()); got != total {
		t.Errorf("len(Subdivisions()) = %d, want %d", got, total)
	}
}

func TestKindsPerCountry(t *testing.T) {
	want := map[string]map[string]int{
		"CN": {"province": 1, "autonomous region": 1},
		"KH": {"province": 24, "autonomous municipality": 1},
		"LA": {"province": 17, "prefecture": 1},
		"MM": {"region": 7, "state": 7, "union territory": 1},
		"TH": {"province": 76, "metropolitan administration": 1, "special administrative city": 1},
		"VN": {"province": 28, "municipality": 6},
	}
	for country, kinds := range want {
		got := map[string]int{}
		for _, s := range InCountry(country) {
			got[s.Kind]++
		}
		for kind, n := range kinds {
			if got[kind] != n {
				t.Errorf("%s: %d of kind %q, want %d", country, got[kind], kind, n)
			}
		}
		if len(got) != len(kinds) {
			t.Errorf("%s: kinds %v, want %v", country, got, kinds)
		}
	}
}

func TestCodesWellFormedUniqueSorted(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,3}$`)
	all := Subdivisions()
	seen := map[string]bool{}
	for i, s := range all {
		if !pattern.MatchString(s.Code) {
			t.Errorf("code %q is malformed", s.Code)
		}
		if !strings.HasPrefix(s.Code, s.Country+"-") {
			t.Errorf("code %q is not prefixed by its country %q", s.Code, s.Country)
		}
		if !KnownCountry(s.Country) {
			t.Errorf("code %q has uncovered country %q", s.Code, s.Country)
		}
		if seen[s.Code] {
			t.Errorf("code %q is duplicated", s.Code)
		}
		seen[s.Code] = true
		if i > 0 && all[i-1].Code >= s.Code {
			t.Errorf("not sorted: %q before %q", all[i-1].Code, s.Code)
		}
		if got, ok := Lookup(s.Code); !ok || got != s {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v, true", s.Code, got, ok, s)
		}
	}
}

func TestNames(t *testing.T) {
	names := map[string]map[string]bool{}
	for _, s := range Subdivisions() {
		if s.Name == "" || s.Kind == "" {
			t.Errorf("%s: empty name or kind: %+v", s.Code, s)
		}
		for _, r := range s.Name {
			if r > 0x7f {
				t.Errorf("%s: name %q is not plain ASCII", s.Code, s.Name)
				break
			}
		}
		if s.LocalName == s.Name {
			t.Errorf("%s: local name repeats name %q", s.Code, s.Name)
		}
		if s.Kind != strings.ToLower(s.Kind) {
			t.Errorf("%s: kind %q is not lower case", s.Code, s.Kind)
		}
		if names[s.Country] == nil {
			names[s.Country] = map[string]bool{}
		}
		if names[s.Country][s.Name] {
			t.Errorf("%s: name %q is used twice in %s", s.Code, s.Name, s.Country)
		}
		names[s.Country][s.Name] = true
	}
}

func TestSpotChecks(t *testing.T) {
	tests := []Subdivision{
		{Code: "KH-12", Country: "KH", Name: "Phnom Penh", Kind: "autonomous municipality"},
		{Code: "KH-25", Country: "KH", Name: "Tboung Khmum", LocalName: "Tbong Khmum", Kind: "province"},
		{Code: "TH-10", Country: "TH", Name: "Bangkok", LocalName: "Krung Thep Maha Nakhon", Kind: "metropolitan administration"},
		{Code: "TH-S", Country: "TH", Name: "Pattaya", LocalName: "Phatthaya", Kind: "special administrative city"},
		{Code: "LA-VT", Country: "LA", Name: "Vientiane Prefecture", LocalName: "Viangchan", Kind: "prefecture"},
		{Code: "LA-XS", Country: "LA", Name: "Xaysomboon", LocalName: "Xaisômboun", Kind: "province"},
		{Code: "MM-18", Country: "MM", Name: "Nay Pyi Taw", Kind: "union territory"},
		{Code: "CN-YN", Country: "CN", Name: "Yunnan", LocalName: "Yunnan Sheng", Kind: "province"},
		{Code: "CN-GX", Country: "CN", Name: "Guangxi", LocalName: "Guangxi Zhuangzu Zizhiqu", Kind: "autonomous region"},
		{Code: "VN-SG", Country: "VN", Name: "Ho Chi Minh City", LocalName: "Hồ Chí Minh", Kind: "municipality"},
		{Code: "VN-26", Country: "VN", Name: "Hue", LocalName: "Huế", Kind: "municipality"},
		{Code: "VN-HN", Country: "VN", Name: "Ha Noi", LocalName: "Hà Nội", Kind: "municipality"},
		{Code: "VN-44", Country: "VN", Name: "An Giang", Kind: "province"},
	}
	for _, want := range tests {
		got, ok := Lookup(want.Code)
		if !ok {
			t.Errorf("Lookup(%q) not found", want.Code)
			continue
		}
		if got != want {
			t.Errorf("Lookup(%q) = %+v, want %+v", want.Code, got, want)
		}
	}
}

func TestVietNamUnits(t *testing.T) {
	// The 34 units in force since 1 July 2025.
	want := []string{
		"VN-01", "VN-02", "VN-04", "VN-05", "VN-07", "VN-09", "VN-13", "VN-18",
		"VN-21", "VN-22", "VN-23", "VN-25", "VN-26", "VN-29", "VN-30", "VN-33",
		"VN-34", "VN-35", "VN-37", "VN-39", "VN-44", "VN-45", "VN-49", "VN-56",
		"VN-59", "VN-66", "VN-68", "VN-69", "VN-71", "VN-CT", "VN-DN", "VN-HN",
		"VN-HP", "VN-SG",
	}
	var got []string
	for _, s := range InCountry("VN") {
		got = append(got, s.Code)
	}
	if !slices.Equal(got, want) {
		t.Errorf("VN codes = %v, want %v", got, want)
	}
	// Codes of the 29 units absorbed on 1 July 2025 are not in the directory.
	absorbed := []string{
		"VN-03", "VN-06", "VN-14", "VN-20", "VN-24", "VN-27", "VN-28", "VN-31",
		"VN-32", "VN-36", "VN-40", "VN-41", "VN-43", "VN-46", "VN-47", "VN-50",
		"VN-51", "VN-52", "VN-53", "VN-54", "VN-55", "VN-57", "VN-58", "VN-61",
		"VN-63", "VN-67", "VN-70", "VN-72", "VN-73",
	}
	if len(absorbed)+len(want) != 63 {
		t.Fatalf("absorbed + current = %d, want the 63 pre-2025 units", len(absorbed)+len(want))
	}
	for _, code := range absorbed {
		if _, ok := Lookup(code); ok {
			t.Errorf("Lookup(%q) found an absorbed unit", code)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	for _, code := range []string{"", "XX-01", "KH-26", "kh-12", "KH-12 ", "CN-GD", "TH-", "VN-03", "KH"} {
		if s, ok := Lookup(code); ok || s != (Subdivision{}) {
			t.Errorf("Lookup(%q) = %+v, %v; want zero, false", code, s, ok)
		}
	}
}

func TestKnownCountry(t *testing.T) {
	for _, code := range []string{"", "US", "kh", "CHN", "C", "HK"} {
		if KnownCountry(code) {
			t.Errorf("KnownCountry(%q) = true", code)
		}
	}
	if got := InCountry("US"); got != nil {
		t.Errorf("InCountry(%q) = %v, want nil", "US", got)
	}
}

func TestInCountryMatchesSubdivisions(t *testing.T) {
	var joined []Subdivision
	for _, c := range Countries() {
		for _, s := range InCountry(c.Code) {
			if s.Country != c.Code {
				t.Errorf("InCountry(%q) returned %q", c.Code, s.Code)
			}
			joined = append(joined, s)
		}
	}
	if !slices.Equal(joined, Subdivisions()) {
		t.Error("the countries' subdivisions, joined in order, differ from Subdivisions()")
	}
}

func TestResultsAreCopies(t *testing.T) {
	all := Subdivisions()
	first := all[0]
	all[0].Name = "changed"
	all[0] = Subdivision{}
	_ = append(all[:1], Subdivision{Code: "ZZ-1"})
	if got := Subdivisions()[0]; got != first {
		t.Errorf("Subdivisions()[0] = %+v after mutation, want %+v", got, first)
	}
	if got, _ := Lookup(first.Code); got != first {
		t.Errorf("Lookup(%q) = %+v after mutation, want %+v", first.Code, got, first)
	}

	kh := InCountry("KH")
	want := kh[0]
	kh[0].Name = "changed"
	if got := InCountry("KH")[0]; got != want {
		t.Errorf("InCountry(KH)[0] = %+v after mutation, want %+v", got, want)
	}
}

func TestParseRejectsBadData(t *testing.T) {
	h := tsvHeader + "\n"
	bad := map[string]string{
		"empty":          "",
		"no header":      "KH-12\tKH\tPhnom Penh\t\tautonomous municipality\n",
		"few fields":     h + "KH-12\tKH\tPhnom Penh\tautonomous municipality\n",
		"bad code":       h + "KH_12\tKH\tPhnom Penh\t\tprovince\n",
		"long code":      h + "KH-1234\tKH\tX\t\tprovince\n",
		"lower code":     h + "kh-12\tKH\tX\t\tprovince\n",
		"wrong country":  h + "KH-12\tTH\tX\t\tprovince\n",
		"uncovered":      h + "US-CA\tUS\tCalifornia\t\tstate\n",
		"empty name":     h + "KH-12\tKH\t\t\tprovince\n",
		"empty kind":     h + "KH-12\tKH\tX\t\t\n",
		"padded":         h + "KH-12\tKH\t Phnom Penh\t\tprovince\n",
		"repeated local": h + "KH-7\tKH\tKampot\tKampot\tprovince\n",
		"duplicate":      h + "KH-7\tKH\tKampot\t\tprovince\nKH-7\tKH\tKampot\t\tprovince\n",
	}
	for name, text := range bad {
		if _, err := parse(text); err == nil {
			t.Errorf("%s: parse succeeded, want an error", name)
		}
	}
	good := h + "KH-7\tKH\tKampot\t\tprovince\r\nKH-12\tKH\tPhnom Penh\t\tautonomous municipality\n"
	tab, err := parse(good)
	if err != nil {
		t.Fatalf("parse(good) = %v", err)
	}
	if len(tab.all) != 2 || tab.all[0].Code != "KH-12" || tab.byCode["KH-7"] != 1 {
		t.Errorf("parse(good) = %+v, want two rows sorted by code", tab.all)
	}
}
