package cli

import (
	"context"

	"github.com/spf13/cobra"
)

// newConsultantsEraseCmd is `exchangectl consultants erase`.
func newConsultantsEraseCmd(a *app) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "erase CONSULTANT --yes",
		Short: "Erase a consultant's personal data, on their request",
		Long: "Erase a consultant's personal data on their request: name, contact, languages,\n" +
			"expertise, provinces, availability and consent are removed from the exchange\n" +
			"for good, and the consultant is no longer listed. Engagements stay, as\n" +
			"engagements of an erased consultant. Only the agency that added the\n" +
			"consultant may. It cannot be undone, so it needs --yes.",
		Example: "  exchangectl consultants erase ilo/01jd8x4k2m9q7r3t5v6w8y0z1a --yes",
		Args:    exactArgs("CONSULTANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := consultantName(args[0])
			if err != nil {
				return err
			}
			if !yes {
				return usageErrorf("erasing removes %s's personal data for good: pass --yes to erase it", name)
			}
			return runConsultantsErase(cmd.Context(), a, name)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "erase (required: it cannot be undone)")
	return cmd
}

// runConsultantsErase erases the profile and prints what is left.
func runConsultantsErase(ctx context.Context, a *app, name string) error {
	c, err := a.connect(ctx)
	if err != nil {
		return err
	}
	k, err := c.Consultants.Erase(ctx, name)
	if err != nil {
		return err
	}
	return printOne(a, k, consultantDetail)
}
