package cli

import "testing"

func TestUIParse(t *testing.T) {
	opts, err := parse(t, newUICmd)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Listen != "127.0.0.1:0" {
		t.Errorf("default --listen %q, want 127.0.0.1:0", opts.Listen)
	}
	for _, ok := range [][]string{{"--listen", "127.0.0.1:8080"}, {"--listen", "[::1]:0"}, {"--country", "LA", "--period", "2027"}} {
		if _, err := parse(t, newUICmd, ok...); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	// The dashboard never listens off the loopback interface.
	for _, bad := range [][]string{
		{"--listen", "0.0.0.0:8080"}, {"--listen", ":8080"}, {"--listen", "192.168.1.5:8080"},
		{"--listen", "localhost:8080"}, {"--listen", "127.0.0.1"},
		{"--country", "kh"}, {"--period", "27"}, {"extra"},
	} {
		if _, err := parse(t, newUICmd, bad...); !isUsage(err) {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
}
