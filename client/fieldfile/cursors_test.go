package fieldfile

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCursorsSurviveReopening(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	c := f.Cursors()
	if v, err := c.Load("watch:referrals"); err != nil || v != "" {
		t.Fatalf("Load of a cursor never saved = %q, %v; want \"\", nil", v, err)
	}
	if err := c.Save("watch:referrals", `{"done":7}`); err != nil {
		t.Fatal(err)
	}
	if err := c.Save("pull:agencies/ilo/datasets/returns?ab", `{"token":"x"}`); err != nil {
		t.Fatal(err)
	}
	if err := c.Save("watch:referrals", `{"done":9}`); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c = f.Cursors()
	if v, err := c.Load("watch:referrals"); err != nil || v != `{"done":9}` {
		t.Fatalf("Load after reopening = %q, %v; want the last value saved", v, err)
	}
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "pull:agencies/ilo/datasets/returns?ab" || list[1].Name != "watch:referrals" {
		t.Fatalf("List = %+v, want the two cursors in name order", list)
	}
	if err := c.Delete("watch:referrals"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("watch:referrals"); err != nil {
		t.Fatalf("deleting a cursor twice = %v, want nil", err)
	}
	if v, _ := c.Load("watch:referrals"); v != "" {
		t.Fatalf("Load after Delete = %q, want \"\"", v)
	}
}

func TestCursorsRefuseBadNamesAndValues(t *testing.T) {
	f, err := Open(filepath.Join(t.TempDir(), DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := f.Cursors()
	for _, tc := range []struct {
		name, value, want string
	}{
		{"", "x", "needs a name"},
		{strings.Repeat("n", MaxCursorName+1), "x", "cursor name of 1025 bytes"},
		{"watch:referrals", "", "empty value"},
		{"watch:referrals", strings.Repeat("v", MaxCursorValue+1), "the limit is 65536"},
	} {
		if err := c.Save(tc.name, tc.value); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Save(%.20q, %d bytes) = %v, want an error saying %q", tc.name, len(tc.value), err, tc.want)
		}
	}
	if list, _ := c.List(); len(list) != 0 {
		t.Fatalf("refused saves left %+v", list)
	}
}

// TestCursorSaveCost logs what one durable Save costs on this machine; a
// pull saves once per message of 1,000 rows.
func TestCursorSaveCost(t *testing.T) {
	f, err := Open(filepath.Join(t.TempDir(), DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := f.Cursors()
	const n = 200
	start := time.Now()
	for i := range n {
		if err := c.Save("pull:agencies/ilo/datasets/returns?0123456789abcdef", strings.Repeat("t", 60)+string(rune('a'+i%26))); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d saves in %v: %v per save", n, time.Since(start), time.Since(start)/n)
}
