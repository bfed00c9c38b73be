package cli

import (
	"testing"

	"github.com/alltogether/exchange/seal"
)

func TestKeysTrustParse(t *testing.T) {
	const fp = "9F2C-1B7E-0A44-D3C1-5E68-27B0-F19A-6C03"
	want, err := seal.ParseFingerprint(fp)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"iom", fp},
		{"agencies/iom", fp},
		{"iom", "9f2c1b7e0a44d3c15e6827b0f19a6c03"},
		{"iom", "9F2C:1B7E:0A44:D3C1:5E68:27B0:F19A:6C03", "--pins", "partners.pins"},
	} {
		opts, err := parse(t, newKeysTrustCmd, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if opts.Agency != "agencies/iom" || opts.Fingerprint != want {
			t.Errorf("%v: agency %q, fingerprint %s", args, opts.Agency, opts.Fingerprint)
		}
	}
	if opts, _ := parse(t, newKeysTrustCmd, "iom", fp, "--pins", "partners.pins"); opts.Pins != "partners.pins" {
		t.Errorf("--pins %q", opts.Pins)
	}
	for _, bad := range [][]string{
		nil,
		{"iom"},
		{"iom", fp, "extra"},
		{"I", fp},
		{"iom", "9F2C-1B7E"},
		{"iom", "not-a-fingerprint-at-all-xxxxxxxxxxxx"},
	} {
		if _, err := parse(t, newKeysTrustCmd, bad...); !isUsage(err) {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
}

func TestKeysVerbsParse(t *testing.T) {
	c, err := parse(t, newKeysCreateCmd, "--key-ring", "secure/ilo.keys")
	if err != nil || c.KeyRing != "secure/ilo.keys" {
		t.Errorf("create: %+v, %v", c, err)
	}
	for name, run := range map[string]func(...string) error{
		"create":   func(a ...string) error { _, err := parse(t, newKeysCreateCmd, a...); return err },
		"rotate":   func(a ...string) error { _, err := parse(t, newKeysRotateCmd, a...); return err },
		"register": func(a ...string) error { _, err := parse(t, newKeysRegisterCmd, a...); return err },
		"show":     func(a ...string) error { _, err := parse(t, newKeysShowCmd, a...); return err },
		"pins":     func(a ...string) error { _, err := parse(t, newKeysPinsCmd, a...); return err },
	} {
		if err := run(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := run("extra"); !isUsage(err) {
			t.Errorf("%s with an argument: %v, want a usage error", name, err)
		}
	}
	if _, err := parse(t, newKeysPinsCmd, "--key-ring", "x"); !isUsage(err) {
		t.Errorf("pins takes --pins, not --key-ring: %v", err)
	}
}
