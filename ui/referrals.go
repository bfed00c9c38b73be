package ui

import (
	"cmp"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/alltogether/exchange/client"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// referralIDPattern is a referral id, as in "referrals/{id}".
var referralIDPattern = regexp.MustCompile(`^[0-9a-z]{26}$`)

// referralsData is the referrals page: an agency's inbox and outbox, or
// the secretariat's network-wide counts.
type referralsData struct {
	Inbox, Outbox referralBox
	// Counts are the secretariat's (or agency's) statistics, by state,
	// niche and province, with totals by state in StateTotals.
	Counts      []referralCount
	StateTotals []referralCount
	// RejectionReasons are the reasons a rejection may give.
	RejectionReasons []string
}

// referralBox is one direction's referrals, overdue first.
type referralBox struct {
	Rows []referralRow
	// ByState counts the referrals in each state.
	ByState []referralCount
	// Overdue counts the overdue ones.
	Overdue int
}

// referralCount is a number of referrals with the labels it is for.
type referralCount struct {
	State, Niche, Location string
	Count                  int64
}

// referralRow is one referral as a table row, with the lifecycle actions
// the caller may take on it.
type referralRow struct {
	ID, Counterparty, State, Niche, Urgency, Location, Updated, Etag string
	Overdue                                                          bool
	// Details says what the page shows of the identifying details:
	// "sealed" (they are never shown here) or "erased".
	Details string
	// Actions are the verbs this side may use in this state.
	Actions []string
}

// stateOrder is where a state sorts: open states first, in lifecycle
// order.
var stateOrder = map[exchangev1.ReferralState]int{
	exchangev1.ReferralState_REFERRAL_STATE_REQUESTED:   1,
	exchangev1.ReferralState_REFERRAL_STATE_RECEIVED:    2,
	exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED:    3,
	exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS: 4,
	exchangev1.ReferralState_REFERRAL_STATE_COMPLETED:   5,
	exchangev1.ReferralState_REFERRAL_STATE_REJECTED:    6,
	exchangev1.ReferralState_REFERRAL_STATE_CANCELLED:   7,
}

// inboxActions are the receiver's verbs by state.
var inboxActions = map[exchangev1.ReferralState][]string{
	exchangev1.ReferralState_REFERRAL_STATE_REQUESTED:   {"acknowledge"},
	exchangev1.ReferralState_REFERRAL_STATE_RECEIVED:    {"accept", "reject"},
	exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED:    {"start"},
	exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS: {"complete"},
}

// outboxActions are the sender's verbs by state.
var outboxActions = map[exchangev1.ReferralState][]string{
	exchangev1.ReferralState_REFERRAL_STATE_REQUESTED:   {"cancel"},
	exchangev1.ReferralState_REFERRAL_STATE_RECEIVED:    {"cancel"},
	exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED:    {"cancel"},
	exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS: {"cancel"},
}

// referrals serves the referrals page.
func (d *Dashboard) referrals(w http.ResponseWriter, r *http.Request) {
	p := d.newPage("Referrals", "referrals")
	if verb, id := r.URL.Query().Get("done"), r.URL.Query().Get("referral"); verb != "" && referralIDPattern.MatchString(id) {
		p.Notice = "Referral " + id + ": " + verb + " done."
	}
	code, data, err := d.referralsData(r)
	if err != nil {
		p.Error = err.Error()
	}
	p.Data = data
	d.render(w, code, "referrals", p)
}

// referralsData reads what the referrals page shows, and the status to
// answer with.
func (d *Dashboard) referralsData(r *http.Request) (int, *referralsData, error) {
	ctx, cancel := callContext(r)
	defer cancel()
	data := &referralsData{}
	for i := range exchangev1.RejectionReason_name {
		if i != 0 {
			data.RejectionReasons = append(data.RejectionReasons, enumText(exchangev1.RejectionReason(i), "REJECTION_REASON_"))
		}
	}
	slices.Sort(data.RejectionReasons)
	counts, err := d.cfg.Client.Referrals.Statistics(ctx)
	if err != nil {
		code, msg := httpStatus(err)
		return code, data, errorString(msg)
	}
	totals := map[exchangev1.ReferralState]int64{}
	for _, c := range counts {
		data.Counts = append(data.Counts, referralCount{State: stateText(c.GetState()), Niche: nicheText(c.GetNiche()), Location: c.GetLocation(), Count: c.GetCount()})
		totals[c.GetState()] += c.GetCount()
	}
	data.StateTotals = stateCounts(totals)
	if d.cfg.Agency == "" {
		// The secretariat sees counts, never contents: the exchange
		// answers its listing with nothing.
		return http.StatusOK, data, nil
	}
	for _, box := range []struct {
		dir     exchangev1.ReferralDirection
		into    *referralBox
		actions map[exchangev1.ReferralState][]string
		other   func(*exchangev1.Referral) string
	}{
		{exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX, &data.Inbox, inboxActions, (*exchangev1.Referral).GetSender},
		{exchangev1.ReferralDirection_REFERRAL_DIRECTION_OUTBOX, &data.Outbox, outboxActions, (*exchangev1.Referral).GetReceiver},
	} {
		list, err := client.Collect(d.cfg.Client.Referrals.Referrals(ctx, &exchangev1.ListReferralsRequest{Direction: box.dir, PageSize: 500}))
		if err != nil {
			code, msg := httpStatus(err)
			return code, data, errorString(msg)
		}
		*box.into = referralBoxOf(list, box.actions, box.other)
	}
	return http.StatusOK, data, nil
}

// referralBoxOf sorts referrals overdue first, then by state in lifecycle
// order, then most recently updated first, and counts them by state.
func referralBoxOf(list []*exchangev1.Referral, actions map[exchangev1.ReferralState][]string, other func(*exchangev1.Referral) string) referralBox {
	slices.SortStableFunc(list, func(a, b *exchangev1.Referral) int {
		if a.GetOverdue() != b.GetOverdue() {
			if a.GetOverdue() {
				return -1
			}
			return 1
		}
		return cmp.Or(
			cmp.Compare(stateOrder[a.GetState()], stateOrder[b.GetState()]),
			b.GetUpdateTime().AsTime().Compare(a.GetUpdateTime().AsTime()),
		)
	})
	var box referralBox
	totals := map[exchangev1.ReferralState]int64{}
	for _, ref := range list {
		// Lists carry no identifying details, and the dashboard opens
		// none: they stay sealed, unless erased for good.
		details := "sealed"
		if ref.GetDetailsErased() {
			details = "erased"
		}
		box.Rows = append(box.Rows, referralRow{
			ID:           client.ResourceID(ref.GetName()),
			Counterparty: client.ResourceID(other(ref)),
			State:        stateText(ref.GetState()),
			Niche:        nicheText(ref.GetService().GetNiche()),
			Urgency:      enumText(ref.GetUrgency(), "URGENCY_"),
			Location:     locationText(ref.GetLocation()),
			Updated:      timeText(ref.GetUpdateTime()),
			Etag:         ref.GetEtag(),
			Overdue:      ref.GetOverdue(),
			Details:      details,
			Actions:      actions[ref.GetState()],
		})
		totals[ref.GetState()]++
		if ref.GetOverdue() {
			box.Overdue++
		}
	}
	box.ByState = stateCounts(totals)
	return box
}

// stateCounts lists totals by state in lifecycle order.
func stateCounts(totals map[exchangev1.ReferralState]int64) []referralCount {
	var out []referralCount
	for s, n := range totals {
		out = append(out, referralCount{State: stateText(s), Count: n, Niche: strconv.Itoa(stateOrder[s])})
	}
	slices.SortFunc(out, func(a, b referralCount) int { return cmp.Compare(a.Niche, b.Niche) })
	for i := range out {
		out[i].Niche = ""
	}
	return out
}

// errorString is an error that is only its message.
type errorString string

func (e errorString) Error() string { return string(e) }

// referralAction applies one lifecycle verb from a POST form, then
// redirects to the referrals page (or shows it with the error).
func (d *Dashboard) referralAction(w http.ResponseWriter, r *http.Request) {
	id, verb := r.PathValue("id"), r.PathValue("verb")
	fail := func(code int, msg string) {
		p := d.newPage("Referrals", "referrals")
		_, data, err := d.referralsData(r)
		if err != nil {
			msg += " (and reading the referrals: " + err.Error() + ")"
		}
		p.Error = msg
		p.Data = data
		d.render(w, code, "referrals", p)
	}
	if !referralIDPattern.MatchString(id) {
		fail(http.StatusBadRequest, "referral: "+strconv.Quote(id)+" is not a referral id (26 lowercase letters and digits)")
		return
	}
	name := client.ReferralName(id)
	etag := r.PostFormValue("etag")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	ctx, cancel := callContext(r)
	defer cancel()
	var err error
	refs := d.cfg.Client.Referrals
	switch verb {
	case "acknowledge":
		_, err = refs.Acknowledge(ctx, name, etag)
	case "accept":
		_, err = refs.Accept(ctx, name, etag)
	case "start":
		_, err = refs.Start(ctx, name, etag)
	case "reject":
		code, ok := exchangev1.RejectionReason_value["REJECTION_REASON_"+strings.ToUpper(strings.ReplaceAll(reason, "-", "_"))]
		if !ok || code == 0 {
			fail(http.StatusBadRequest, "rejection reason: "+strconv.Quote(reason)+" is not one of the code list")
			return
		}
		_, err = refs.Reject(ctx, name, &exchangev1.Rejection{Reason: exchangev1.RejectionReason(code), Details: strings.TrimSpace(r.PostFormValue("details"))}, etag)
	case "complete":
		if reason == "" {
			fail(http.StatusBadRequest, "outcome reason: required (why the referral succeeded or not, without identifying details)")
			return
		}
		_, err = refs.Complete(ctx, name, &exchangev1.Outcome{Successful: r.PostFormValue("successful") == "on", Reason: reason}, etag)
	case "cancel":
		if reason == "" {
			fail(http.StatusBadRequest, "cancel reason: required (why, without identifying details)")
			return
		}
		_, err = refs.Cancel(ctx, name, reason, etag)
	default:
		fail(http.StatusNotFound, "no lifecycle action "+strconv.Quote(verb))
		return
	}
	if err != nil {
		code, msg := httpStatus(err)
		fail(code, "Referral "+id+": "+verb+": "+msg)
		return
	}
	http.Redirect(w, r, "/referrals?"+url.Values{"done": {verb}, "referral": {id}}.Encode(), http.StatusSeeOther)
}
