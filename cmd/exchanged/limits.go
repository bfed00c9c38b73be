package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// concurrencyOptions are the per-agency bounds on calls in flight.
type concurrencyOptions struct {
	callsInFlight int
	streams       int
	watches       int
}

// addConcurrencyFlags defines the per-agency concurrency flags, each with
// its EXCHANGE_* variable.
func addConcurrencyFlags(cmd *cobra.Command, o *concurrencyOptions) {
	f := cmd.Flags()
	f.IntVar(&o.callsInFlight, "max-calls-in-flight-per-agency", 128,
		"unary calls each agency (and the secretariat) may have in flight over all its connections; beyond it calls get RESOURCE_EXHAUSTED; negative for no limit (EXCHANGE_MAX_CALLS_IN_FLIGHT_PER_AGENCY)")
	f.IntVar(&o.streams, "max-streams-per-agency", 64,
		"streams (watches, pulls, backups) each agency may have open at once; negative for no limit (EXCHANGE_MAX_STREAMS_PER_AGENCY)")
	f.IntVar(&o.watches, "max-watches-per-agency", 32,
		"watches (of referrals, plans, dataset rows) each agency may have open at once, within its streams; negative for no limit (EXCHANGE_MAX_WATCHES_PER_AGENCY)")
	bindEnv(cmd, "max-calls-in-flight-per-agency", "EXCHANGE_MAX_CALLS_IN_FLIGHT_PER_AGENCY")
	bindEnv(cmd, "max-streams-per-agency", "EXCHANGE_MAX_STREAMS_PER_AGENCY")
	bindEnv(cmd, "max-watches-per-agency", "EXCHANGE_MAX_WATCHES_PER_AGENCY")
}

// validate refuses a limit of 0, which would refuse every call of its
// kind (the server would otherwise read 0 as "the default").
func (o concurrencyOptions) validate() error {
	for flag, v := range map[string]int{
		"--max-calls-in-flight-per-agency": o.callsInFlight, "--max-streams-per-agency": o.streams, "--max-watches-per-agency": o.watches,
	} {
		if v == 0 {
			return fmt.Errorf("%s 0 would refuse every call it bounds: give a positive number, or a negative one for no limit", flag)
		}
	}
	return nil
}

// envAnnotation marks a flag with the environment variable that sets it.
const envAnnotation = "exchange-env"

// bindEnv makes the environment variable env set the flag of cmd when the
// command line does not; a value the flag refuses is an error naming the
// variable. Unlike env(), it parses the value as the flag does.
func bindEnv(cmd *cobra.Command, flag, env string) {
	if err := cmd.Flags().SetAnnotation(flag, envAnnotation, []string{env}); err != nil {
		panic(err) // a flag not defined: a programming error
	}
	if cmd.PreRunE == nil {
		cmd.PreRunE = func(c *cobra.Command, _ []string) error { return applyEnv(c.Flags()) }
	}
}

// applyEnv sets every flag bound to an environment variable that is set,
// unless the command line set the flag.
func applyEnv(f *pflag.FlagSet) error {
	var err error
	f.VisitAll(func(fl *pflag.Flag) {
		env := fl.Annotations[envAnnotation]
		if err != nil || len(env) == 0 || fl.Changed {
			return
		}
		if v := os.Getenv(env[0]); v != "" {
			if e := f.Set(fl.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env[0], v, e)
			}
		}
	})
	return err
}
