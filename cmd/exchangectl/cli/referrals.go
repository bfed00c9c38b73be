package cli

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Flag names of the referral enums.
var (
	referralStateNames   = enumNames{"referral state", "REFERRAL_STATE_", exchangev1.ReferralState(0).Descriptor()}
	urgencyNames         = enumNames{"urgency", "URGENCY_", exchangev1.Urgency(0).Descriptor()}
	consentGiverNames    = enumNames{"consent giver", "CONSENT_GIVER_", exchangev1.ConsentGiver(0).Descriptor()}
	rejectionReasonNames = enumNames{"rejection reason", "REJECTION_REASON_", exchangev1.RejectionReason(0).Descriptor()}
	sexNames             = enumNames{"sex", "SEX_", exchangev1.Sex(0).Descriptor()}
	pushStatusNames      = enumNames{"push status", "REFERRAL_PUSH_STATUS_", exchangev1.ReferralPushStatus(0).Descriptor()}
	eventKindNames       = enumNames{"event kind", "REFERRAL_EVENT_KIND_", exchangev1.ReferralEventKind(0).Descriptor()}
)

// referralIDPattern is the syntax of a referral id.
var referralIDPattern = regexp.MustCompile(`^[0-9a-z]{26}$`)

// newReferralsCmd is `exchangectl referrals`.
func newReferralsCmd(a *app) *cobra.Command {
	cmd := newGroupCmd("referrals", "Send, answer and follow referrals of people (agencies)",
		"Referrals of people between agencies: return and reintegration, counselling,\n"+
			"shelter, legal aid... Only the sending and the receiving agency ever see a\n"+
			"referral; consent is recorded before anything moves.\n\n"+
			"The sender pushes referrals from a file, many at a time, and may cancel one,\n"+
			"revoke consent or erase its identifying details for good. The receiver acknowledges, then accepts or rejects,\n"+
			"starts, completes, or forwards to a third agency:\n\n"+
			"  requested → received → accepted → in-progress → completed\n"+
			"                      ↘ rejected\n\n"+
			"ID is a referral's id as 'referrals inbox' shows it, or its full name\n"+
			"referrals/ID. Identifying details show only in 'referrals show'.")
	cmd.Aliases = []string{"referral", "ref"}
	cmd.AddCommand(
		newReferralsPushCmd(a, nil),
		newReferralsInboxCmd(a, nil),
		newReferralsOutboxCmd(a, nil),
		newReferralsShowCmd(a, nil),
		newReferralsAcknowledgeCmd(a, nil),
		newReferralsAcceptCmd(a, nil),
		newReferralsRejectCmd(a, nil),
		newReferralsStartCmd(a, nil),
		newReferralsCompleteCmd(a, nil),
		newReferralsCancelCmd(a, nil),
		newReferralsRevokeConsentCmd(a, nil),
		newReferralsEraseCmd(a, nil),
		newReferralsForwardCmd(a, nil),
		newReferralsSuggestCmd(a, nil),
		newReferralsStatsCmd(a, nil),
		newReferralsWatchCmd(a, nil),
	)
	return cmd
}

// referralName accepts "referrals/ID" or a bare ID (any case) and returns
// the full resource name.
func referralName(s string) (string, error) {
	id := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "referrals/"))
	if !referralIDPattern.MatchString(id) {
		return "", usageErrorf("invalid referral id %q: want the 26-character id 'referrals inbox' shows, or referrals/ID", s)
	}
	return client.ReferralName(id), nil
}

// referralsListOptions are the inputs of `referrals inbox` and `referrals
// outbox`.
type referralsListOptions struct {
	app          *app
	Direction    exchangev1.ReferralDirection
	State        exchangev1.ReferralState
	Niche        exchangev1.Niche
	Counterparty string
	Overdue      bool
}

// newReferralsInboxCmd is `exchangectl referrals inbox`.
func newReferralsInboxCmd(a *app, runF func(*referralsListOptions) error) *cobra.Command {
	return newReferralsListCmd(a, runF, exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX, "inbox",
		"List referrals sent to your agency, newest first",
		"  exchangectl referrals inbox --state requested --overdue\n"+
			"  exchangectl referrals inbox --niche shelter --counterparty iom")
}

// newReferralsOutboxCmd is `exchangectl referrals outbox`.
func newReferralsOutboxCmd(a *app, runF func(*referralsListOptions) error) *cobra.Command {
	cmd := newReferralsListCmd(a, runF, exchangev1.ReferralDirection_REFERRAL_DIRECTION_OUTBOX, "outbox",
		"List referrals your agency sent, newest first",
		"  exchangectl referrals outbox --state rejected")
	cmd.Long += "\n\nThese are referrals the exchange has. Writes this machine keeps because the\n" +
		"exchange could not be reached are in 'exchangectl outbox list' (--field-file)."
	return cmd
}

// newReferralsListCmd builds inbox and outbox.
func newReferralsListCmd(a *app, runF func(*referralsListOptions) error, dir exchangev1.ReferralDirection, use, short, example string) *cobra.Command {
	opts := &referralsListOptions{app: a, Direction: dir}
	cmd := &cobra.Command{
		Use:   use + " [--state S] [--niche N] [--counterparty AGENCY] [--overdue]",
		Short: short,
		Long: short + ", as summaries without identifying details\n" +
			"('referrals show ID' has them). Overdue referrals are those not acknowledged\n" +
			"within the time their urgency allows.",
		Example: example,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runReferralsList(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	newEnumFlag(f, &opts.State, "state", referralStateNames, "only referrals in this state")
	newEnumFlag(f, &opts.Niche, "niche", nicheNames, "only referrals for this service")
	f.StringVar(&opts.Counterparty, "counterparty", "", "only referrals with this other agency id")
	f.BoolVar(&opts.Overdue, "overdue", false, "only referrals overdue for acknowledgement")
	return cmd
}

// request returns the list request, or a usage error.
func (o *referralsListOptions) request() (*exchangev1.ListReferralsRequest, error) {
	req := &exchangev1.ListReferralsRequest{Direction: o.Direction, State: o.State, Niche: o.Niche, OverdueOnly: o.Overdue}
	if o.Counterparty != "" {
		id, err := agencyID(o.Counterparty)
		if err != nil {
			return nil, err
		}
		req.Counterparty = client.AgencyName(id)
	}
	return req, nil
}

// runReferralsList prints the matching referrals, and on a terminal the
// revision to watch from.
func runReferralsList(ctx context.Context, o *referralsListOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	referrals, rev, err := c.Referrals.Snapshot(ctx, req)
	if err != nil {
		return err
	}
	other, otherHeader := (*exchangev1.Referral).GetSender, "FROM"
	if o.Direction == exchangev1.ReferralDirection_REFERRAL_DIRECTION_OUTBOX {
		other, otherHeader = (*exchangev1.Referral).GetReceiver, "TO"
	}
	err = printList(o.app, referrals, "referrals",
		[]string{"ID", "STATE", otherHeader, "URGENCY", "SERVICE", "LOCATION", "CREATED", "OVERDUE"},
		func(r *exchangev1.Referral) []string {
			overdue := "-"
			if r.GetOverdue() {
				overdue = "overdue"
			}
			return []string{
				client.ResourceID(r.GetName()),
				referralStateNames.name(protoreflect.EnumNumber(r.GetState())),
				client.ResourceID(other(r)),
				urgencyNames.name(protoreflect.EnumNumber(r.GetUrgency())),
				nicheNames.name(protoreflect.EnumNumber(r.GetService().GetNiche())),
				orDash(locationString(r.GetLocation())),
				formatTime(r.GetCreateTime()),
				overdue,
			}
		})
	if err == nil && o.app.stderrIsTerminal() {
		fmt.Fprintf(o.app.env.Stderr, "Listed at revision %d: 'exchangectl referrals watch --from %d' follows what changes next.\n", rev, rev)
	}
	return err
}

// referralsShowOptions are the inputs of `referrals show`.
type referralsShowOptions struct {
	app *app
	ID  string
}

// newReferralsShowCmd is `exchangectl referrals show`.
func newReferralsShowCmd(a *app, runF func(*referralsShowOptions) error) *cobra.Command {
	opts := &referralsShowOptions{app: a}
	return &cobra.Command{
		Use:     "show ID",
		Aliases: []string{"get"},
		Short:   "Show one referral in full, with its history",
		Long: "Show one referral with its identifying details (withheld from the receiver\n" +
			"once consent is revoked) and its history. Each such read is recorded in the\n" +
			"exchange's audit chain.",
		Example: "  exchangectl referrals show 01jd8x4k2m9q7r3t5v6w8y0z1a",
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, err := referralName(opts.ID); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runReferralsShow(cmd.Context(), opts)
		},
	}
}

// runReferralsShow prints the referral.
func runReferralsShow(ctx context.Context, o *referralsShowOptions) error {
	name, err := referralName(o.ID)
	if err != nil {
		return err
	}
	c, err := o.app.connectSealing(ctx)
	if err != nil {
		return err
	}
	r, err := c.Referrals.Get(ctx, name)
	if err != nil {
		return err
	}
	return printReferral(o.app, r)
}

// referralsVerbOptions are the inputs of the state verbs that take only an
// ID: acknowledge, accept and start.
type referralsVerbOptions struct {
	app  *app
	Verb string
	ID   string
}

// newReferralsAcknowledgeCmd is `exchangectl referrals acknowledge`.
func newReferralsAcknowledgeCmd(a *app, runF func(*referralsVerbOptions) error) *cobra.Command {
	return newReferralsVerbCmd(a, runF, "acknowledge", []string{"ack"},
		"Record that you have seen a referral sent to you", "requested → received")
}

// newReferralsAcceptCmd is `exchangectl referrals accept`.
func newReferralsAcceptCmd(a *app, runF func(*referralsVerbOptions) error) *cobra.Command {
	return newReferralsVerbCmd(a, runF, "accept", nil,
		"Say you will provide the service", "received → accepted")
}

// newReferralsStartCmd is `exchangectl referrals start`.
func newReferralsStartCmd(a *app, runF func(*referralsVerbOptions) error) *cobra.Command {
	return newReferralsVerbCmd(a, runF, "start", nil,
		"Say you are providing the service", "accepted → in-progress")
}

// newReferralsVerbCmd builds acknowledge, accept and start.
func newReferralsVerbCmd(a *app, runF func(*referralsVerbOptions) error, verb string, aliases []string, short, move string) *cobra.Command {
	opts := &referralsVerbOptions{app: a, Verb: verb}
	return &cobra.Command{
		Use:     verb + " ID",
		Aliases: aliases,
		Short:   short + " (" + move + "; receiver)",
		Long: short + ": " + move + ".\nOnly the receiving agency may; in another state it fails with exit code 6,\n" +
			"naming the current state. Not retried: after a connection error, run\n" +
			"'referrals show ID' to see whether it took effect.",
		Example: "  exchangectl referrals " + verb + " 01jd8x4k2m9q7r3t5v6w8y0z1a",
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, err := referralName(opts.ID); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runReferralsVerb(cmd.Context(), opts)
		},
	}
}

// runReferralsVerb makes the move and prints the referral.
func runReferralsVerb(ctx context.Context, o *referralsVerbOptions) error {
	name, err := referralName(o.ID)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	var r *exchangev1.Referral
	switch o.Verb {
	case "acknowledge":
		r, err = c.Referrals.Acknowledge(ctx, name, "")
	case "accept":
		r, err = c.Referrals.Accept(ctx, name, "")
	case "start":
		r, err = c.Referrals.Start(ctx, name, "")
	default:
		return fmt.Errorf("unknown referral verb %q", o.Verb)
	}
	if err != nil {
		return err
	}
	return printReferral(o.app, r)
}

// referralsRejectOptions are the inputs of `referrals reject`.
type referralsRejectOptions struct {
	app     *app
	ID      string
	Reason  exchangev1.RejectionReason
	Details string
}

// newReferralsRejectCmd is `exchangectl referrals reject`.
func newReferralsRejectCmd(a *app, runF func(*referralsRejectOptions) error) *cobra.Command {
	opts := &referralsRejectOptions{app: a}
	cmd := &cobra.Command{
		Use:   "reject ID --reason REASON [--details TEXT]",
		Short: "Say you will not provide the service (received → rejected; receiver)",
		Long: "Reject a referral you acknowledged, with a reason from the code list; --details\n" +
			"explains, and is required with --reason other. Write no identifying details.",
		Example: "  exchangectl referrals reject 01jd8x4k2m9q7r3t5v6w8y0z1a --reason no-capacity\n" +
			"  exchangectl referrals reject 01jd8x4k2m9q7r3t5v6w8y0z1a --reason other --details \"service paused until June\"",
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runReferralsReject(cmd.Context(), opts)
		},
	}
	newEnumFlag(cmd.Flags(), &opts.Reason, "reason", rejectionReasonNames, "why (required)")
	cmd.Flags().StringVar(&opts.Details, "details", "", "explanation; required with --reason other")
	return cmd
}

// request returns the referral name and the rejection, or a usage error.
func (o *referralsRejectOptions) request() (string, *exchangev1.Rejection, error) {
	name, err := referralName(o.ID)
	if err != nil {
		return "", nil, err
	}
	switch {
	case o.Reason == exchangev1.RejectionReason_REJECTION_REASON_UNSPECIFIED:
		return "", nil, usageErrorf("--reason is required: %s", strings.Join(rejectionReasonNames.values(), ", "))
	case o.Reason == exchangev1.RejectionReason_REJECTION_REASON_OTHER && strings.TrimSpace(o.Details) == "":
		return "", nil, usageErrorf("--reason other needs --details")
	}
	return name, &exchangev1.Rejection{Reason: o.Reason, Details: o.Details}, nil
}

// runReferralsReject rejects the referral and prints it.
func runReferralsReject(ctx context.Context, o *referralsRejectOptions) error {
	name, rejection, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	r, err := c.Referrals.Reject(ctx, name, rejection, "")
	if err != nil {
		return err
	}
	return printReferral(o.app, r)
}

// referralsCompleteOptions are the inputs of `referrals complete`.
type referralsCompleteOptions struct {
	app          *app
	ID           string
	Successful   bool
	Unsuccessful bool
	Reason       string
	Delivered    []exchangev1.Niche
}

// newReferralsCompleteCmd is `exchangectl referrals complete`.
func newReferralsCompleteCmd(a *app, runF func(*referralsCompleteOptions) error) *cobra.Command {
	opts := &referralsCompleteOptions{app: a}
	cmd := &cobra.Command{
		Use:   "complete ID (--successful | --unsuccessful) --reason TEXT [--delivered NICHE...]",
		Short: "Record the outcome (in-progress → completed; receiver)",
		Long: "Record what came of a referral: whether it achieved what it asked for, why\n" +
			"(without identifying details), and the services actually delivered.",
		Example: "  exchangectl referrals complete 01jd8x4k2m9q7r3t5v6w8y0z1a --successful \\\n" +
			"    --reason \"reunited with family, follow-up arranged\" --delivered return-and-reintegration,psychosocial-counselling",
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runReferralsComplete(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.Successful, "successful", false, "the referral achieved what it asked for")
	f.BoolVar(&opts.Unsuccessful, "unsuccessful", false, "it did not")
	f.StringVar(&opts.Reason, "reason", "", "why it succeeded or not, without identifying details (required)")
	newEnumSliceFlag(f, &opts.Delivered, "delivered", nicheNames, "a service delivered")
	return cmd
}

// request returns the referral name and the outcome, or a usage error.
func (o *referralsCompleteOptions) request() (string, *exchangev1.Outcome, error) {
	name, err := referralName(o.ID)
	if err != nil {
		return "", nil, err
	}
	switch {
	case o.Successful == o.Unsuccessful:
		return "", nil, usageErrorf("give exactly one of --successful and --unsuccessful")
	case strings.TrimSpace(o.Reason) == "":
		return "", nil, usageErrorf("--reason is required")
	}
	var delivered []exchangev1.Niche
	if len(o.Delivered) > 0 {
		delivered = o.Delivered
	}
	return name, &exchangev1.Outcome{Successful: o.Successful, Reason: o.Reason, ServicesDelivered: delivered}, nil
}

// runReferralsComplete completes the referral and prints it.
func runReferralsComplete(ctx context.Context, o *referralsCompleteOptions) error {
	name, outcome, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	r, err := c.Referrals.Complete(ctx, name, outcome, "")
	if err != nil {
		return err
	}
	return printReferral(o.app, r)
}

// referralsReasonOptions are the inputs of cancel and revoke-consent.
type referralsReasonOptions struct {
	app    *app
	Verb   string
	ID     string
	Reason string
}

// newReferralsCancelCmd is `exchangectl referrals cancel`.
func newReferralsCancelCmd(a *app, runF func(*referralsReasonOptions) error) *cobra.Command {
	return newReferralsReasonCmd(a, runF, "cancel",
		"Withdraw a referral you sent, before it is completed (sender)",
		"Withdraw a referral your agency sent: any state but rejected, completed and\n"+
			"cancelled becomes cancelled. Give the reason without identifying details.",
		"  exchangectl referrals cancel 01jd8x4k2m9q7r3t5v6w8y0z1a --reason \"sent to the wrong agency\"")
}

// newReferralsRevokeConsentCmd is `exchangectl referrals revoke-consent`.
func newReferralsRevokeConsentCmd(a *app, runF func(*referralsReasonOptions) error) *cobra.Command {
	return newReferralsReasonCmd(a, runF, "revoke-consent",
		"Record that the person withdrew consent (sender)",
		"Record that the person (or guardian) withdrew consent to a referral your agency\n"+
			"sent. From then on the receiver, and any agency it forwarded to, no longer\n"+
			"sees the identifying details, and the referral cannot be forwarded. The state\n"+
			"does not change; cancel it too if the service should stop.",
		"  exchangectl referrals revoke-consent 01jd8x4k2m9q7r3t5v6w8y0z1a --reason \"withdrawn by guardian\"")
}

// newReferralsReasonCmd builds cancel and revoke-consent.
func newReferralsReasonCmd(a *app, runF func(*referralsReasonOptions) error, verb, short, long, example string) *cobra.Command {
	opts := &referralsReasonOptions{app: a, Verb: verb}
	cmd := &cobra.Command{
		Use:     verb + " ID --reason TEXT",
		Short:   short,
		Long:    long,
		Example: example,
		Args:    exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, err := referralName(opts.ID); err != nil {
				return err
			}
			if strings.TrimSpace(opts.Reason) == "" {
				return usageErrorf("--reason is required")
			}
			if runF != nil {
				return runF(opts)
			}
			return runReferralsReason(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Reason, "reason", "", "why, without identifying details (required)")
	return cmd
}

// runReferralsReason cancels the referral or revokes consent, and prints
// it.
func runReferralsReason(ctx context.Context, o *referralsReasonOptions) error {
	name, err := referralName(o.ID)
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	var r *exchangev1.Referral
	switch o.Verb {
	case "cancel":
		r, err = c.Referrals.Cancel(ctx, name, o.Reason, "")
	case "revoke-consent":
		r, err = c.Referrals.RevokeConsent(ctx, name, o.Reason)
	default:
		return fmt.Errorf("unknown referral verb %q", o.Verb)
	}
	if err != nil {
		return err
	}
	return printReferral(o.app, r)
}

// referralsForwardOptions are the inputs of `referrals forward`.
type referralsForwardOptions struct {
	app            *app
	ID             string
	To             string
	Niche          exchangev1.Niche
	Need           string
	Urgency        exchangev1.Urgency
	ConsentGivenBy exchangev1.ConsentGiver
	OverrideReason string
	// ConsentTime is RFC 3339; "" means now.
	ConsentTime string
	RequestID   string
}

// newReferralsForwardCmd is `exchangectl referrals forward`.
func newReferralsForwardCmd(a *app, runF func(*referralsForwardOptions) error) *cobra.Command {
	opts := &referralsForwardOptions{app: a}
	cmd := &cobra.Command{
		Use:   "forward ID --to AGENCY --niche NICHE --need TEXT --consent-given-by GIVER [flags]",
		Short: "Refer the person on to a third agency (receiver)",
		Long: "Refer the person of a referral you received on to another agency: a new\n" +
			"referral from your agency, linked to this one, with its own consent, which\n" +
			"covers that agency and the service. Allowed while the referral is received,\n" +
			"accepted or in progress, and not after consent was revoked.\n\n" +
			"--consent-given-by best-interest-override (no consent, for example for a\n" +
			"child without a guardian) needs --override-reason: why, and who decided.\n" +
			"The forward carries a request id (random, or --request-id), so a retry\n" +
			"after a lost answer never forwards twice; give --request-id yourself to be\n" +
			"able to re-run the command safely.",
		Example: "  exchangectl referrals forward 01jd8x4k2m9q7r3t5v6w8y0z1a --to unicef --niche shelter \\\n" +
			"    --need \"safe shelter while family tracing continues\" --consent-given-by guardian \\\n" +
			"    --consent-time 2026-03-14T09:30:00+07:00",
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runReferralsForward(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.To, "to", "", "the agency id to refer on to (required)")
	newEnumFlag(f, &opts.Niche, "niche", nicheNames, "the service needed (required)")
	f.StringVar(&opts.Need, "need", "", "what the person needs, without identifying details (required)")
	newEnumFlag(f, &opts.Urgency, "urgency", urgencyNames, "how soon (default: the original referral's)")
	newEnumFlag(f, &opts.ConsentGivenBy, "consent-given-by", consentGiverNames, "who consented to the forward (required)")
	f.StringVar(&opts.OverrideReason, "override-reason", "", "for best-interest-override: why, and who decided")
	f.StringVar(&opts.ConsentTime, "consent-time", "", "when consent was given, RFC 3339 such as 2026-03-14T09:30:00+07:00 (default now)")
	f.StringVar(&opts.RequestID, "request-id", "", "idempotency key, up to 64 letters, digits and . _ : - (default random)")
	return cmd
}

// request returns the forward request, or a usage error.
func (o *referralsForwardOptions) request() (*exchangev1.ForwardReferralRequest, error) {
	name, err := referralName(o.ID)
	if err != nil {
		return nil, err
	}
	if o.To == "" {
		return nil, usageErrorf("--to is required")
	}
	to, err := agencyID(o.To)
	if err != nil {
		return nil, err
	}
	switch {
	case o.Niche == exchangev1.Niche_NICHE_UNSPECIFIED:
		return nil, usageErrorf("--niche is required: %s", strings.Join(nicheNames.values(), ", "))
	case strings.TrimSpace(o.Need) == "":
		return nil, usageErrorf("--need is required")
	case o.ConsentGivenBy == exchangev1.ConsentGiver_CONSENT_GIVER_UNSPECIFIED:
		return nil, usageErrorf("--consent-given-by is required: %s", strings.Join(consentGiverNames.values(), ", "))
	case o.ConsentGivenBy == exchangev1.ConsentGiver_CONSENT_GIVER_BEST_INTEREST_OVERRIDE && strings.TrimSpace(o.OverrideReason) == "":
		return nil, usageErrorf("--consent-given-by best-interest-override needs --override-reason")
	case o.ConsentGivenBy != exchangev1.ConsentGiver_CONSENT_GIVER_BEST_INTEREST_OVERRIDE && o.OverrideReason != "":
		return nil, usageErrorf("--override-reason applies only with --consent-given-by best-interest-override")
	case o.RequestID != "" && !requestIDPattern.MatchString(o.RequestID):
		return nil, usageErrorf("invalid --request-id %q: want 1 to 64 letters, digits and . _ : -, starting with a letter or digit", o.RequestID)
	}
	given := o.app.env.Now()
	if o.ConsentTime != "" {
		if given, err = time.Parse(time.RFC3339, o.ConsentTime); err != nil {
			return nil, usageErrorf("invalid --consent-time %q: want RFC 3339, such as 2026-03-14T09:30:00+07:00", o.ConsentTime)
		}
	}
	receiver := client.AgencyName(to)
	return &exchangev1.ForwardReferralRequest{
		Name:     name,
		Receiver: receiver,
		Service:  &exchangev1.RequestedService{Niche: o.Niche, Need: o.Need},
		Urgency:  o.Urgency,
		Consent: &exchangev1.Consent{
			GivenBy:         o.ConsentGivenBy,
			GivenTime:       timestamppb.New(given),
			ReceivingAgency: receiver,
			Services:        []exchangev1.Niche{o.Niche},
			OverrideReason:  o.OverrideReason,
		},
		RequestId: o.RequestID,
	}, nil
}

// requestIDPattern is the syntax of a request id.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// runReferralsForward forwards the referral and prints the new one.
func runReferralsForward(ctx context.Context, o *referralsForwardOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connectSealing(ctx)
	if err != nil {
		return err
	}
	r, err := c.Referrals.Forward(ctx, req)
	if err != nil {
		return err
	}
	return printReferral(o.app, r)
}

// referralsSuggestOptions are the inputs of `referrals suggest`.
type referralsSuggestOptions struct {
	app      *app
	Niche    exchangev1.Niche
	Province string
}

// newReferralsSuggestCmd is `exchangectl referrals suggest`.
func newReferralsSuggestCmd(a *app, runF func(*referralsSuggestOptions) error) *cobra.Command {
	opts := &referralsSuggestOptions{app: a}
	cmd := &cobra.Command{
		Use:   "suggest --niche NICHE --province CODE",
		Short: "Find agencies that serve a need in a province",
		Long: "List the active agencies that declare the niche and cover the province (those\n" +
			"naming the province first, then those covering its whole country). When none\n" +
			"does, say so: a gap worth raising with the coordination working group.",
		Example: "  exchangectl referrals suggest --niche shelter --province KH-12",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, _, err := opts.request(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runReferralsSuggest(cmd.Context(), opts)
		},
	}
	newEnumFlag(cmd.Flags(), &opts.Niche, "niche", nicheNames, "the service needed (required)")
	cmd.Flags().StringVar(&opts.Province, "province", "", "the province, ISO 3166-2 such as KH-12 (required)")
	return cmd
}

// request returns the niche and province, or a usage error.
func (o *referralsSuggestOptions) request() (exchangev1.Niche, string, error) {
	if o.Niche == exchangev1.Niche_NICHE_UNSPECIFIED {
		return 0, "", usageErrorf("--niche is required: %s", strings.Join(nicheNames.values(), ", "))
	}
	if o.Province == "" {
		return 0, "", usageErrorf("--province is required")
	}
	province, err := subdivisionCode(o.Province)
	if err != nil {
		return 0, "", err
	}
	return o.Niche, province, nil
}

// runReferralsSuggest prints the matching agencies, or the gap.
func runReferralsSuggest(ctx context.Context, o *referralsSuggestOptions) error {
	niche, province, err := o.request()
	if err != nil {
		return err
	}
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	resp, err := c.Referrals.SuggestRecipients(ctx, niche, province)
	if err != nil {
		return err
	}
	if o.app.global.JSON {
		return printJSON(o.app.env.Stdout, resp)
	}
	if resp.GetGap() {
		_, err := fmt.Fprintf(o.app.env.Stdout, "Gap: %s.\n", cmp.Or(resp.GetNote(), "no agency serves this need in "+province))
		return err
	}
	rows := make([][]string, 0, len(resp.GetAgencies()))
	for _, ag := range resp.GetAgencies() {
		covers := province[:2] + " (whole country)"
		for _, l := range ag.GetCoverage() {
			if l.GetSubdivision() == province {
				covers = province
			}
		}
		rows = append(rows, []string{client.ResourceID(ag.GetName()), orDash(ag.GetShortName()), ag.GetDisplayName(), covers})
	}
	return printTable(o.app.env.Stdout, []string{"ID", "SHORT", "NAME", "COVERS"}, rows)
}

// referralsStatsOptions are the inputs of `referrals stats`.
type referralsStatsOptions struct {
	app *app
}

// newReferralsStatsCmd is `exchangectl referrals stats`.
func newReferralsStatsCmd(a *app, runF func(*referralsStatsOptions) error) *cobra.Command {
	opts := &referralsStatsOptions{app: a}
	return &cobra.Command{
		Use:     "stats",
		Aliases: []string{"statistics"},
		Short:   "Count referrals by state, service and province",
		Long: "Count referrals by state, service and province: your agency's own, or across\n" +
			"the exchange for the secretariat. Only counts, never contents.",
		Example: "  exchangectl referrals stats",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runReferralsStats(cmd.Context(), opts)
		},
	}
}

// runReferralsStats prints the counts.
func runReferralsStats(ctx context.Context, o *referralsStatsOptions) error {
	c, err := o.app.connect(ctx)
	if err != nil {
		return err
	}
	counts, err := c.Referrals.Statistics(ctx)
	if err != nil {
		return err
	}
	return printList(o.app, counts, "referrals",
		[]string{"STATE", "SERVICE", "LOCATION", "COUNT"},
		func(n *exchangev1.ReferralCount) []string {
			return []string{
				referralStateNames.name(protoreflect.EnumNumber(n.GetState())),
				nicheNames.name(protoreflect.EnumNumber(n.GetNiche())),
				n.GetLocation(),
				strconv.FormatInt(n.GetCount(), 10),
			}
		})
}

// printReferral prints a referral as a JSON object, or as labelled lines
// followed by its history as a table.
func printReferral(a *app, r *exchangev1.Referral) error {
	if a.global.JSON {
		return printJSON(a.env.Stdout, r)
	}
	if err := printFields(a.env.Stdout, referralDetail(r)); err != nil {
		return err
	}
	if len(r.GetHistory()) == 0 {
		return nil
	}
	fmt.Fprintln(a.env.Stdout, "\nHistory:")
	rows := make([][]string, 0, len(r.GetHistory()))
	for _, t := range r.GetHistory() {
		rows = append(rows, []string{
			formatTime(t.GetTime()),
			client.ResourceID(t.GetActor()),
			orDash(referralStateNames.name(protoreflect.EnumNumber(t.GetFromState()))),
			orDash(referralStateNames.name(protoreflect.EnumNumber(t.GetToState()))),
			t.GetReason(),
		})
	}
	return printTable(a.env.Stdout, []string{"TIME", "BY", "FROM", "TO", "WHAT"}, rows)
}

// referralDetail is the human form of one referral.
func referralDetail(r *exchangev1.Referral) []field {
	subject := r.GetSubject()
	consent := r.GetConsent()
	var age, birthYear string
	if subject != nil && subject.Age != nil {
		age = strconv.Itoa(int(subject.GetAge()))
	}
	if subject.GetBirthYear() != 0 {
		birthYear = strconv.Itoa(int(subject.GetBirthYear()))
	}
	var covers []string
	if consent != nil {
		covers = append(covers, client.ResourceID(consent.GetReceivingAgency())+": "+strings.ReplaceAll(nicheList(consent.GetServices()), ",", ", "))
	}
	var rejection, outcome, withheld, overdue string
	if rj := r.GetRejection(); rj != nil {
		rejection = rejectionReasonNames.name(protoreflect.EnumNumber(rj.GetReason()))
		if rj.GetDetails() != "" {
			rejection += ": " + rj.GetDetails()
		}
	}
	if oc := r.GetOutcome(); oc != nil {
		outcome = "unsuccessful: " + oc.GetReason()
		if oc.GetSuccessful() {
			outcome = "successful: " + oc.GetReason()
		}
	}
	switch {
	case r.GetDetailsErased():
		withheld = "erased " + formatTime(r.GetEraseTime())
	case r.GetDetailsWithheld():
		withheld = "withheld"
	}
	if r.GetOverdue() {
		overdue = "yes, not acknowledged in the time its urgency allows"
	}
	return []field{
		{"Name", r.GetName()},
		{"State", referralStateNames.name(protoreflect.EnumNumber(r.GetState()))},
		{"Overdue", overdue},
		{"From", r.GetSender()},
		{"To", r.GetReceiver()},
		{"Service", nicheNames.name(protoreflect.EnumNumber(r.GetService().GetNiche()))},
		{"Need", r.GetService().GetNeed()},
		{"Urgency", urgencyNames.name(protoreflect.EnumNumber(r.GetUrgency()))},
		{"Location", locationString(r.GetLocation())},
		{"Case reference", r.GetSenderCaseReference()},
		{"Subject reference", r.GetSubjectReference()},
		{"Identifying details", withheld},
		{"Person", subject.GetName()},
		{"Sex", sexNames.name(protoreflect.EnumNumber(subject.GetSex()))},
		{"Age", age},
		{"Birth year", birthYear},
		{"Nationality", subject.GetNationality()},
		{"Languages", strings.Join(subject.GetLanguages(), ", ")},
		{"Now at", locationString(subject.GetCurrentLocation())},
		{"Guardian contact", subject.GetGuardianContact()},
		{"Case notes", r.GetCaseNotes()},
		{"Consent given by", consentGiverNames.name(protoreflect.EnumNumber(consent.GetGivenBy()))},
		{"Consent given", formatTime(consent.GetGivenTime())},
		{"Consent covers", strings.Join(covers, "; ")},
		{"Override reason", consent.GetOverrideReason()},
		{"Consent revoked", formatTime(consent.GetRevokeTime())},
		{"Rejected", rejection},
		{"Outcome", outcome},
		{"Delivered", strings.ReplaceAll(nicheList(r.GetOutcome().GetServicesDelivered()), ",", ", ")},
		{"Forwarded from", r.GetForwardedFrom()},
		{"Forwarded to", strings.Join(r.GetForwardedTo(), ", ")},
		{"Created", formatTime(r.GetCreateTime())},
		{"Updated", formatTime(r.GetUpdateTime())},
		{"Etag", r.GetEtag()},
	}
}

// locationString formats a location reference: the province (with the
// area, if any), else the country; "" for nil.
func locationString(l *exchangev1.LocationRef) string {
	switch {
	case l == nil:
		return ""
	case l.GetArea() != "":
		return strings.TrimSpace(l.GetSubdivision() + " " + l.GetArea())
	case l.GetSubdivision() != "":
		return l.GetSubdivision()
	default:
		return l.GetCountry()
	}
}
