package cli

import "testing"

func TestCertsIssueParse(t *testing.T) {
	tests := []struct {
		args        []string
		wantSubject string
		wantBase    string
		wantUsage   bool
	}{
		{[]string{"--agency", "ilo"}, "agencies/ilo", "ilo", false},
		{[]string{"--agency", "agencies/ilo", "--out-dir", "certs", "--validity-days", "90", "--force"}, "agencies/ilo", "ilo", false},
		{[]string{"--secretariat"}, "secretariat", "secretariat", false},
		{nil, "", "", true},
		{[]string{"--agency", "ilo", "--secretariat"}, "", "", true},
		{[]string{"--agency", "I"}, "", "", true},
		{[]string{"--agency", "ilo", "--validity-days", "900"}, "", "", true},
		{[]string{"--agency", "ilo", "--validity-days", "-1"}, "", "", true},
		{[]string{"--agency", "ilo", "--validity-days", "ten"}, "", "", true},
		{[]string{"ilo"}, "", "", true},
	}
	for _, tt := range tests {
		opts, err := parse(t, newCertsIssueCmd, tt.args...)
		if tt.wantUsage {
			if !isUsage(err) {
				t.Errorf("%v: got %v, want a usage error", tt.args, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		subject, base, err := opts.subject()
		if err != nil || subject != tt.wantSubject || base != tt.wantBase {
			t.Errorf("%v: %q %q %v", tt.args, subject, base, err)
		}
	}
	opts, _ := parse(t, newCertsIssueCmd, "--agency", "ilo", "--out-dir", "certs", "--validity-days", "90", "--force")
	if opts.OutDir != "certs" || opts.ValidityDays != 90 || !opts.Force {
		t.Errorf("options %+v", opts)
	}
	if opts, _ := parse(t, newCertsIssueCmd, "--agency", "ilo"); opts.OutDir != "." {
		t.Errorf("default out dir %q", opts.OutDir)
	}
}

func TestCertsSerialsAndFilters(t *testing.T) {
	for arg, want := range map[string]string{"1f3a": "1f3a", "certificates/1F3A": "1f3a", "1f:3a": "1f3a"} {
		opts, err := parse(t, newCertsGetCmd, arg)
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if got, _ := certificateSerial(opts.Serial); got != want {
			t.Errorf("%s: serial %q, want %q", arg, got, want)
		}
	}
	for _, bad := range []string{"xyz", "certificates/", "1234567890123456789012345678901234567890a"} {
		if _, err := parse(t, newCertsGetCmd, bad); !isUsage(err) {
			t.Errorf("%s: %v, want a usage error", bad, err)
		}
	}
	if _, err := parse(t, newCertsRevokeCmd, "1f3a"); !isUsage(err) {
		t.Errorf("revoke without --reason: %v", err)
	}
	r, err := parse(t, newCertsRevokeCmd, "1f3a", "--reason", "rotated")
	if err != nil || r.Reason != "rotated" {
		t.Errorf("revoke: %+v, %v", r, err)
	}
	for args, want := range map[string]string{"": "", "--agency=ilo": "agencies/ilo", "--secretariat": "secretariat"} {
		var argv []string
		if args != "" {
			argv = []string{args}
		}
		opts, err := parse(t, newCertsListCmd, argv...)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := opts.subject(); got != want {
			t.Errorf("list %s: subject %q, want %q", args, got, want)
		}
	}
}
