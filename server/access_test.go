package server

import (
	"slices"
	"testing"
)

// TestEveryMethodHasAnAccessRule fails when a method is registered without
// an explicit access rule (default deny would refuse it, silently), or when
// a rule names a method that no longer exists.
func TestEveryMethodHasAnAccessRule(t *testing.T) {
	x := startExchange(t)
	methods := x.server.Methods()
	if len(methods) < 20 {
		t.Fatalf("only %d methods registered; the service list looks wrong", len(methods))
	}
	for _, m := range methods {
		if _, ok := accessRules[m]; !ok {
			t.Errorf("method %s has no access rule in accessRules", m)
		}
	}
	for m := range accessRules {
		if !slices.Contains(methods, m) {
			t.Errorf("access rule for %s, which is not registered", m)
		}
	}
}
