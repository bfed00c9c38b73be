package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/client"
	"github.com/alltogether/exchange/geo"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// newLocationsCmd is `exchangectl locations`.
func newLocationsCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("locations", "Look up provinces (read only)",
		"The provinces and equivalent first-level subdivisions the exchange knows, by\n"+
			"ISO 3166-2 code (KH-12 is Phnom Penh). The list ships with the exchange;\n"+
			"'locations list' says which edition of ISO 3166-2 it follows and, for Viet\n"+
			"Nam, which reorganisation (the 34 units in force since 1 July 2025).")
	cmd.Aliases = []string{"location"}
	cmd.AddCommand(newLocationsListCmd(a, nil), newLocationsGetCmd(a, nil))
	return cmd
}

// locationsListOptions are the inputs of `locations list`.
type locationsListOptions struct {
	app     *app
	Country string
}

// newLocationsListCmd is `exchangectl locations list`.
func newLocationsListCmd(a *app, runF func(*locationsListOptions) error) *cobra.Command {
	opts := &locationsListOptions{app: a}
	cmd := &cobra.Command{
		Use:     "list [--country CC]",
		Aliases: []string{"ls"},
		Short:   "List provinces, optionally of one country",
		Example: "  exchangectl locations list --country KH",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runLocationsList(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Country, "country", "", "only this country, ISO code such as KH")
	return cmd
}

// request returns the list request, or a usage error.
func (o *locationsListOptions) request() (*exchangev1.ListLocationsRequest, error) {
	req := &exchangev1.ListLocationsRequest{}
	if o.Country != "" {
		c, err := countryCode(o.Country)
		if err != nil {
			return nil, err
		}
		req.Country = c
	}
	return req, nil
}

// runLocationsList prints the provinces.
func runLocationsList(ctx context.Context, o *locationsListOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	locations, err := client.Collect(c.Directory.Locations(ctx, req))
	if err != nil {
		return err
	}
	if err := printList(o.app, locations, "locations",
		[]string{"CODE", "NAME", "LOCAL NAME", "KIND"},
		func(l *exchangev1.Location) []string {
			return []string{l.GetCode(), l.GetDisplayName(), orDash(l.GetLocalName()), orDash(l.GetKind())}
		}); err != nil {
		return err
	}
	printLocationsEdition(o.app.env.Stderr, req.GetCountry())
	return nil
}

// printLocationsEdition says on stderr, after a list, which edition of
// ISO 3166-2 the list follows and, for Viet Nam or all countries, which
// reorganisation: the list this build of exchangectl ships, which is the
// exchange's of the same version.
func printLocationsEdition(w io.Writer, country string) {
	fmt.Fprintf(w, "Locations follow %s.\n", geo.Edition)
	if country == "" || country == "VN" {
		fmt.Fprintf(w, "%s; 'exchangectl locations get' on an old code names the unit that absorbed it.\n", geo.VietNamReorganisation)
	}
}

// locationsGetOptions are the inputs of `locations get`.
type locationsGetOptions struct {
	app  *app
	Code string
}

// newLocationsGetCmd is `exchangectl locations get`.
func newLocationsGetCmd(a *app, runF func(*locationsGetOptions) error) *cobra.Command {
	opts := &locationsGetOptions{app: a}
	return &cobra.Command{
		Use:     "get CODE",
		Short:   "Show one province",
		Example: "  exchangectl locations get KH-12",
		Args:    exactArgs("CODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Code = args[0]
			if _, err := subdivisionCode(opts.Code); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runLocationsGet(cmd.Context(), opts)
		},
	}
}

// runLocationsGet prints the province.
func runLocationsGet(ctx context.Context, o *locationsGetOptions) error {
	code, err := subdivisionCode(o.Code)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	l, err := c.Directory.GetLocation(ctx, client.LocationName(code))
	if err != nil {
		return err
	}
	return printOne(o.app, l, func(l *exchangev1.Location) []field {
		return []field{
			{"Name", l.GetName()},
			{"Code", l.GetCode()},
			{"Country", l.GetCountry()},
			{"Display name", l.GetDisplayName()},
			{"Local name", l.GetLocalName()},
			{"Kind", l.GetKind()},
		}
	})
}
