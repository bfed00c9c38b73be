package cli

import (
	"os"
	"strings"
	"testing"
)

// noTemporaryFiles fails if a temporary output file is left in dir.
func noTemporaryFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("%s left behind in %s", e.Name(), dir)
		}
	}
}
