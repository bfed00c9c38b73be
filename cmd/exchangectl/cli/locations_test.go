package cli

import (
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestLocationsParse(t *testing.T) {
	opts, err := parse(t, newLocationsListCmd, "--country", "th")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := opts.request()
	equalProto(t, req, &exchangev1.ListLocationsRequest{Country: "TH"})
	for _, arg := range []string{"KH-12", "kh-12", "locations/KH-12"} {
		g, err := parse(t, newLocationsGetCmd, arg)
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if code, _ := subdivisionCode(g.Code); code != "KH-12" {
			t.Errorf("%s: code %q", arg, code)
		}
	}
	for _, bad := range []string{"KH", "Phnom Penh", "KH-1234"} {
		if _, err := parse(t, newLocationsGetCmd, bad); !isUsage(err) {
			t.Errorf("%s: %v, want a usage error", bad, err)
		}
	}
	if _, err := parse(t, newLocationsListCmd, "--country", "Cambodia"); !isUsage(err) {
		t.Errorf("bad country: %v", err)
	}
}

// Issue 19, item 6c: `locations list --country VN` says which edition of
// ISO 3166-2 and which reorganisation of Viet Nam the list follows; other
// countries get the edition alone.
func TestRunLocationsListSaysTheEdition(t *testing.T) {
	f := newFixture(t)
	f.server.PutLocation(&exchangev1.Location{Name: "locations/VN-SG", Code: "VN-SG", Country: "VN", DisplayName: "Ho Chi Minh City", Kind: "municipality"})
	f.server.PutLocation(&exchangev1.Location{Name: "locations/KH-19", Code: "KH-19", Country: "KH", DisplayName: "Stung Treng", LocalName: "Stueng Traeng", Kind: "province"})
	r := f.run("locations", "list", "--country", "VN").must(t)
	if !strings.Contains(r.stdout, "Ho Chi Minh City") ||
		!strings.Contains(r.stderr, "Locations follow ISO 3166-2 as in Debian iso-codes 4.20.1") ||
		!strings.Contains(r.stderr, "Viet Nam: the 34 provincial-level units in force since 1 July 2025 (National Assembly Resolution 202/2025/QH15") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	r = f.run("locations", "list", "--country", "KH").must(t)
	if !strings.Contains(r.stderr, "iso-codes 4.20.1") || strings.Contains(r.stderr, "Viet Nam") {
		t.Errorf("KH: stderr:\n%s", r.stderr)
	}
	r = f.run("--json", "locations", "list", "--country", "VN").must(t)
	if !strings.HasPrefix(strings.TrimSpace(r.stdout), "[") || strings.Contains(r.stdout, "iso-codes") {
		t.Errorf("--json: the note must stay off stdout:\n%s", r.stdout)
	}
}
