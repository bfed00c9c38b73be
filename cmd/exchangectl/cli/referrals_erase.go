package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// erasureReasonNames are the flag names of the erasure reasons.
var erasureReasonNames = enumNames{"erasure reason", "ERASURE_REASON_", exchangev1.ErasureReason(0).Descriptor()}

// referralsEraseOptions are the inputs of `referrals erase`.
type referralsEraseOptions struct {
	app  *app
	ID   string
	Code exchangev1.ErasureReason
	// Note is the free-text --reason, optional.
	Note string
	// Yes skips the confirmation.
	Yes bool
}

// newReferralsEraseCmd is `exchangectl referrals erase`.
func newReferralsEraseCmd(a *app, runF func(*referralsEraseOptions) error) *cobra.Command {
	opts := &referralsEraseOptions{app: a}
	cmd := &cobra.Command{
		Use:   "erase ID --reason-code CODE [--reason TEXT] [--yes]",
		Short: "Erase a referral's identifying details for good (sender)",
		Long: "Destroy the identifying details (the person and the case notes) of a referral\n" +
			"your agency sent, for example at the person's request. The exchange destroys\n" +
			"the key they were encrypted with and overwrites the pages of its database that\n" +
			"held them before it answers; nothing can bring them back. The referral's state\n" +
			"and history stay, and both agencies see that the details were erased.\n\n" +
			"--reason-code says why; it is recorded in the audit chain. --reason adds a\n" +
			"note, without identifying details, to the referral's history.\n\n" +
			"On a terminal, erase asks you to type the referral's id to confirm. Without a\n" +
			"terminal (in a script) it erases only with --yes.",
		Example: "  exchangectl referrals erase 01jd8x4k2m9q7r3t5v6w8y0z1a --reason-code person-request\n" +
			"  exchangectl referrals erase 01jd8x4k2m9q7r3t5v6w8y0z1a --reason-code recorded-in-error \\\n" +
			"    --reason \"sent for the wrong person\" --yes",
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runReferralsErase(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	newEnumFlag(f, &opts.Code, "reason-code", erasureReasonNames, "why (required)")
	f.StringVar(&opts.Note, "reason", "", "a note for the referral's history, without identifying details")
	f.BoolVar(&opts.Yes, "yes", false, "erase without asking (required without a terminal)")
	return cmd
}

// request returns the erase request, or a usage error.
func (o *referralsEraseOptions) request() (*exchangev1.EraseReferralDetailsRequest, error) {
	name, err := referralName(o.ID)
	if err != nil {
		return nil, err
	}
	if o.Code == exchangev1.ErasureReason_ERASURE_REASON_UNSPECIFIED {
		return nil, usageErrorf("--reason-code is required: %s", strings.Join(erasureReasonNames.values(), ", "))
	}
	return &exchangev1.EraseReferralDetailsRequest{Name: name, ReasonCode: o.Code, Reason: strings.TrimSpace(o.Note)}, nil
}

// runReferralsErase confirms, erases the referral's details and prints the
// referral.
func runReferralsErase(ctx context.Context, o *referralsEraseOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	if !o.Yes {
		if err := o.confirm(client.ResourceID(req.GetName())); err != nil {
			return err
		}
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	r, err := c.Referrals.EraseDetails(ctx, req.GetName(), req.GetReasonCode(), req.GetReason())
	if err != nil {
		return err
	}
	return printReferral(o.app, r)
}

// confirm asks the person at the terminal to type the referral's id, and
// refuses without a terminal.
func (o *referralsEraseOptions) confirm(id string) error {
	if !o.app.stdinIsTerminal() {
		return usageErrorf("erasing destroys the details for good, and there is no terminal to confirm on: pass --yes to erase referrals/%s from a script", id)
	}
	fmt.Fprintf(o.app.env.Stderr, "This destroys the identifying details of referrals/%s for good.\nType the referral's id (%s) to confirm: ", id, id)
	line, err := bufio.NewReader(o.app.env.Stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("cannot read the confirmation: %w", err)
	}
	if typed := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(line), "referrals/")); typed != id {
		return usageErrorf("not confirmed: you typed %q, not the referral's id %s; nothing was erased", strings.TrimSpace(line), id)
	}
	return nil
}

// stdinIsTerminal reports whether a person can answer on the standard
// input. env.IsTerminal decides, for an input that is also a writer (an
// *os.File is one).
func (a *app) stdinIsTerminal() bool {
	w, ok := a.env.Stdin.(io.Writer)
	return ok && a.env.IsTerminal(w)
}
