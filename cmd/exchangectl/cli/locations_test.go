package cli

import (
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
