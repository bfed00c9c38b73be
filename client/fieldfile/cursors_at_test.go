package fieldfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPathCursorsHoldTheFileOnlyWhileTheyWork(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	c := CursorsAt(path)
	if err := c.Save("watch:referrals", "position 1"); err != nil {
		t.Fatal(err)
	}
	// Between calls the file is free: a command opens it at once.
	f, err := OpenWithin(path, time.Millisecond)
	if err != nil {
		t.Fatalf("Open after a Save = %v, want the file free", err)
	}
	if v, err := f.Cursors().Load("watch:referrals"); err != nil || v != "position 1" {
		t.Fatalf("Load through Open = %q, %v; want the saved position", v, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Load("watch:referrals"); err != nil || v != "position 1" {
		t.Fatalf("Load = %q, %v; want the saved position", v, err)
	}
	if err := c.Delete("watch:referrals"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Load("watch:referrals"); err != nil || v != "" {
		t.Fatalf("Load after Delete = %q, %v; want nothing", v, err)
	}
	if _, err := OpenWithin(path, time.Millisecond); err != nil {
		t.Fatalf("Open after a Load = %v, want the file free", err)
	}
}

func TestPathCursorsWaitForABriefHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	held, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// The holder lets go after longer than Open used to wait (1 s).
	released := make(chan error, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		released <- held.Close()
	}()
	start := time.Now()
	if err := CursorsAt(path).Save("watch:referrals", "position 2"); err != nil {
		t.Fatalf("Save while another holds the file for 1.5 s = %v, want it to wait", err)
	}
	t.Logf("Save waited %v for the holder", time.Since(start))
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	if v, err := CursorsAt(path).Load("watch:referrals"); err != nil || v != "position 2" {
		t.Fatalf("Load = %q, %v; want the position saved after the wait", v, err)
	}
}

func TestOpenWaitsForABriefHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	c := CursorsAt(path)
	if err := c.Save("watch:referrals", "position 3"); err != nil {
		t.Fatal(err)
	}
	held, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(1500 * time.Millisecond)
		held.Close()
	}()
	f, err := Open(path)
	if err != nil {
		t.Fatalf("Open while another holds the file for 1.5 s = %v, want it to wait", err)
	}
	f.Close()
}

func TestPathCursorsGiveUpOnAFileHeldLong(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	held, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	c := CursorsAt(path)
	c.wait = 200 * time.Millisecond
	err = c.Save("watch:referrals", "position 4")
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Save while the file is held = %v, want ErrInUse naming %s", err, path)
	}
}

func TestPathCursorsCheckTheFileOnEveryOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	c := CursorsAt(path)
	if err := c.Save("watch:referrals", "position 5"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load("watch:referrals"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load of a 0644 file = %v, want a refusal that says chmod 600", err)
	}
	if err := c.Save("watch:referrals", "position 6"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Save to a 0644 file = %v, want a refusal that says chmod 600", err)
	}
}

// TestPathCursorSaveCost logs what one Save that opens and closes the file
// costs on this machine; a pull saves once per message of rows.
func TestPathCursorSaveCost(t *testing.T) {
	c := CursorsAt(filepath.Join(t.TempDir(), DefaultName))
	const n = 100
	start := time.Now()
	for i := range n {
		if err := c.Save("pull:agencies/ilo/datasets/returns?0123456789abcdef", strings.Repeat("t", 60)+string(rune('a'+i%26))); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d saves in %v: %v per save (open, save, close)", n, time.Since(start), time.Since(start)/n)
}
