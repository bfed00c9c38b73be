package main

import (
	"io"
	"strings"
	"testing"
)

// TestConcurrencyFlagsReadTheEnvironment checks the per-agency limits'
// defaults, that EXCHANGE_* variables set them, that the command line wins
// and that a bad value names its variable.
func TestConcurrencyFlagsReadTheEnvironment(t *testing.T) {
	parse := func(args ...string) (map[string]int, error) {
		root := newRootCommand(io.Discard, io.Discard).cmd
		if err := root.ParseFlags(args); err != nil {
			return nil, err
		}
		if err := root.PreRunE(root, nil); err != nil {
			return nil, err
		}
		out := map[string]int{}
		for _, name := range []string{"max-calls-in-flight-per-agency", "max-streams-per-agency", "max-watches-per-agency"} {
			v, err := root.Flags().GetInt(name)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = v
		}
		return out, nil
	}
	got, err := parse()
	if err != nil || got["max-calls-in-flight-per-agency"] != 128 || got["max-streams-per-agency"] != 64 || got["max-watches-per-agency"] != 32 {
		t.Fatalf("defaults %v, %v", got, err)
	}
	t.Setenv("EXCHANGE_MAX_WATCHES_PER_AGENCY", "200")
	t.Setenv("EXCHANGE_MAX_STREAMS_PER_AGENCY", "-1")
	got, err = parse("--max-streams-per-agency", "300")
	if err != nil || got["max-watches-per-agency"] != 200 || got["max-streams-per-agency"] != 300 {
		t.Fatalf("with the environment %v, %v; want watches 200 from it and streams 300 from the command line", got, err)
	}
	t.Setenv("EXCHANGE_MAX_CALLS_IN_FLIGHT_PER_AGENCY", "many")
	if _, err := parse(); err == nil || !strings.Contains(err.Error(), "EXCHANGE_MAX_CALLS_IN_FLIGHT_PER_AGENCY") {
		t.Fatalf("a bad value: %v, want an error naming the variable", err)
	}
	if err := (concurrencyOptions{callsInFlight: 1, streams: 1, watches: 0}).validate(); err == nil || !strings.Contains(err.Error(), "--max-watches-per-agency 0") {
		t.Fatalf("a limit of 0: %v", err)
	}
}
