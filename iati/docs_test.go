package iati

import (
	"os"
	"slices"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestSectorTableMatchesDocs checks that docs/iati.md's table of sectors
// and niches is the table SectorNiches uses: every code it lists maps to
// the niches it says ("—" for none), and every code of the table is
// listed.
func TestSectorTableMatchesDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/iati.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			continue
		}
		code := strings.TrimSpace(cells[1])
		if code == "" || strings.Trim(code, "0123456789") != "" {
			continue
		}
		listed[code] = true
		vocab := "1"
		if len(code) == 3 {
			vocab = "2"
		}
		var want []exchangev1.Niche
		if niches := strings.TrimSpace(cells[3]); niches != "—" {
			for _, n := range strings.Split(niches, ",") {
				v, ok := exchangev1.Niche_value["NICHE_"+strings.TrimSpace(n)]
				if !ok {
					t.Errorf("docs: %s: no niche %q", code, n)
				}
				want = append(want, exchangev1.Niche(v))
			}
		}
		if got := SectorNiches(vocab, code); !slices.Equal(got, want) {
			t.Errorf("docs say %s → %v, the table maps it to %v", code, want, got)
		}
	}
	for _, table := range []map[string][]exchangev1.Niche{dacSectors, dacCategories} {
		for code := range table {
			if !listed[code] {
				t.Errorf("%s is in the table but not in docs/iati.md", code)
			}
		}
	}
	if len(listed) < 40 {
		t.Errorf("docs list %d codes", len(listed))
	}
}
