package geo

import "testing"

func TestISOCountry(t *testing.T) {
	if len(isoCountries) != 249 {
		t.Fatalf("%d ISO countries, want 249", len(isoCountries))
	}
	for code, want := range map[string]string{"KH": "Cambodia", "US": "United States", "CH": "Switzerland"} {
		if got, ok := ISOCountry(code); !ok || got != want {
			t.Errorf("%s: %q %v", code, got, ok)
		}
	}
	for _, code := range []string{"XX", "kh", "UK", ""} {
		if _, ok := ISOCountry(code); ok {
			t.Errorf("%q accepted", code)
		}
	}
	for _, c := range Countries() {
		if _, ok := ISOCountry(c.Code); !ok {
			t.Errorf("covered country %s is not an ISO code", c.Code)
		}
	}
}
