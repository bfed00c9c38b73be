package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestConsultantsThroughTheCLI drives `exchangectl consultants` against a
// real exchanged with three agencies: ilo adds a consultant without
// consent (unlisted: iom cannot see it) and one with consent, iom books
// the listed one, unicef's overlapping booking is refused (exit 6) naming
// iom's engagement and its dates, `show` gives each agency the
// engagements it may see, and `erase` leaves the engagement of an erased
// consultant while the database file no longer holds the name.
func TestConsultantsThroughTheCLI(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	sessions := map[string]session{}
	for _, id := range []string{"ilo", "iom", "unicef"} {
		sec.ok(t, "agencies", "create", id, "--name", strings.ToUpper(id), "--kind", "un-agency", "--niche", "psychosocial-counselling", "--coverage", "KH-12")
		sec.ok(t, "certs", "issue", "--agency", id, "--out-dir", "certs-"+id)
		sessions[id] = agencySession(t, srv.addr, filepath.Join(dir, "certs-"+id), id)
	}
	ilo, iom, unicef := sessions["ilo"], sessions["iom"], sessions["unicef"]
	const marker = "CLI-Consultant-Sokha-5521"

	var unlisted, listed exchangev1.Consultant
	ilo.jsonOne(t, &unlisted, "consultants", "add", "--name", "Unlisted Person", "--language", "km")
	ilo.jsonOne(t, &listed, "consultants", "add", "--name", marker, "--email", "roster@ilo.example", "--language", "km",
		"--language", "en", "--niche", "psychosocial-counselling", "--province", "KH-12", "--available", "2026-04-01:2026-09-30",
		"--consent-on", "2026-03-01", "--consent-note", "form CF-12")
	if listed.GetConsent().GetGivenOn().GetDay() != 1 || len(listed.GetAvailability()) != 1 || listed.GetOwner() != "agencies/ilo" {
		t.Fatalf("added: %v", &listed)
	}
	seen := jsonList(t, iom, func() *exchangev1.Consultant { return &exchangev1.Consultant{} }, "consultants", "list", "--language", "km")
	if len(seen) != 1 || seen[0].GetName() != listed.GetName() {
		t.Fatalf("iom lists %v, want only the consultant with consent", seen)
	}
	iom.fails(t, 3, []string{"not found"}, "consultants", "show", unlisted.GetName())

	var booked exchangev1.Engagement
	iom.jsonOne(t, &booked, "consultants", "engage", listed.GetName(), "--from", "2026-05-04", "--to", "2026-05-15",
		"--niche", "psychosocial-counselling", "--purpose", "training of shelter staff")
	unicef.fails(t, 6, []string{booked.GetName(), "agencies/iom", "2026-05-04", "2026-05-15"},
		"consultants", "engage", listed.GetName(), "--from", "2026-05-11", "--to", "2026-05-22",
		"--niche", "psychosocial-counselling", "--purpose", "case conference")
	var own exchangev1.Engagement
	unicef.jsonOne(t, &own, "consultants", "engage", listed.GetName(), "--from", "2026-05-18", "--to", "2026-05-22",
		"--niche", "psychosocial-counselling", "--purpose", "case conference")

	shown := func(s session) (string, []string) {
		t.Helper()
		out := s.ok(t, "--json", "consultants", "show", listed.GetName())
		var doc struct {
			Consultant  json.RawMessage   `json:"consultant"`
			Engagements []json.RawMessage `json:"engagements"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("show --json: %v\n%s", err, out)
		}
		var k exchangev1.Consultant
		if err := protojson.Unmarshal(doc.Consultant, &k); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, raw := range doc.Engagements {
			var e exchangev1.Engagement
			if err := protojson.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			names = append(names, e.GetName())
		}
		return k.GetDisplayName(), names
	}
	for who, want := range map[string][]string{"ilo": {booked.GetName(), own.GetName()}, "iom": {booked.GetName()}, "unicef": {own.GetName()}} {
		if name, got := shown(sessions[who]); name != marker || strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s's show: %q %v, want %v", who, name, got, want)
		}
	}
	if out := iom.ok(t, "consultants", "show", listed.GetName()); !strings.Contains(out, "training of shelter staff") || strings.Contains(out, "case conference") {
		t.Errorf("iom's table shows another agency's engagement, or not its own:\n%s", out)
	}

	// Cancelling: only the booking agency, only before the end.
	unicef.fails(t, 3, []string{"not found"}, "consultants", "cancel-engagement", booked.GetName(), "--reason", "not ours")
	ilo.fails(t, 4, []string{"agencies/iom"}, "consultants", "cancel-engagement", booked.GetName(), "--reason", "not ours either")
	iom.fails(t, 6, []string{"ended on 2026-05-15"}, "consultants", "cancel-engagement", booked.GetName(), "--reason", "too late")
	iom.fails(t, 2, []string{"--reason"}, "consultants", "cancel-engagement", booked.GetName())
	ahead := time.Now().UTC().AddDate(0, 2, 0)
	var later exchangev1.Engagement
	iom.jsonOne(t, &later, "consultants", "engage", listed.GetName(), "--from", ahead.Format(time.DateOnly), "--to", ahead.AddDate(0, 0, 4).Format(time.DateOnly),
		"--niche", "psychosocial-counselling", "--purpose", "refresher training")
	short := strings.TrimPrefix(strings.Replace(strings.Replace(later.GetName(), "/consultants/", "/", 1), "/engagements/", "/", 1), "agencies/")
	if out := iom.ok(t, "consultants", "cancel-engagement", short, "--reason", "trainer unavailable"); !strings.Contains(out, "trainer unavailable") {
		t.Errorf("cancel-engagement printed:\n%s", out)
	}
	if out := iom.ok(t, "consultants", "show", listed.GetName()); !strings.Contains(out, ": trainer unavailable") {
		t.Errorf("show does not mark the cancelled engagement:\n%s", out)
	}
	// Its weeks are free for another agency.
	unicef.ok(t, "consultants", "engage", listed.GetName(), "--from", ahead.Format(time.DateOnly), "--to", ahead.AddDate(0, 0, 4).Format(time.DateOnly),
		"--niche", "psychosocial-counselling", "--purpose", "case conference")

	iom.fails(t, 4, nil, "consultants", "erase", listed.GetName(), "--yes")
	ilo.fails(t, 2, []string{"--yes"}, "consultants", "erase", listed.GetName())
	out := ilo.ok(t, "consultants", "erase", listed.GetName(), "--yes")
	if !strings.Contains(out, "(erased consultant)") || strings.Contains(out, marker) {
		t.Fatalf("erase printed:\n%s", out)
	}
	if name, got := shown(iom); name != "" || strings.Join(got, ",") != booked.GetName()+","+later.GetName() {
		t.Fatalf("after erasure iom sees %q %v, want its engagements (one cancelled) of an erased consultant", name, got)
	}
	raw, err := os.ReadFile(dbPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(marker)) {
		t.Fatal("the erased consultant's name is still in the database file")
	}
}
