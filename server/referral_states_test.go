package server

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

type verb struct {
	name string
	side string // "sender" or "receiver"
	from []exchangev1.ReferralState
	to   exchangev1.ReferralState
	call func(c as, name string) (*exchangev1.Referral, error)
}

var (
	stRequested  = exchangev1.ReferralState_REFERRAL_STATE_REQUESTED
	stReceived   = exchangev1.ReferralState_REFERRAL_STATE_RECEIVED
	stAccepted   = exchangev1.ReferralState_REFERRAL_STATE_ACCEPTED
	stRejected   = exchangev1.ReferralState_REFERRAL_STATE_REJECTED
	stInProgress = exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS
	stCompleted  = exchangev1.ReferralState_REFERRAL_STATE_COMPLETED
	stCancelled  = exchangev1.ReferralState_REFERRAL_STATE_CANCELLED
)

// The model of the lifecycle, written apart from the server's table.
var verbs = []verb{
	{"acknowledge", "receiver", []exchangev1.ReferralState{stRequested}, stReceived, func(c as, n string) (*exchangev1.Referral, error) {
		r, err := c.referrals().AcknowledgeReferral(context.Background(), &exchangev1.AcknowledgeReferralRequest{Name: n})
		return r.GetReferral(), err
	}},
	{"accept", "receiver", []exchangev1.ReferralState{stReceived}, stAccepted, func(c as, n string) (*exchangev1.Referral, error) {
		r, err := c.referrals().AcceptReferral(context.Background(), &exchangev1.AcceptReferralRequest{Name: n})
		return r.GetReferral(), err
	}},
	{"reject", "receiver", []exchangev1.ReferralState{stReceived}, stRejected, func(c as, n string) (*exchangev1.Referral, error) {
		r, err := c.referrals().RejectReferral(context.Background(), &exchangev1.RejectReferralRequest{Name: n,
			Rejection: &exchangev1.Rejection{Reason: exchangev1.RejectionReason_REJECTION_REASON_NO_CAPACITY}})
		return r.GetReferral(), err
	}},
	{"start", "receiver", []exchangev1.ReferralState{stAccepted}, stInProgress, func(c as, n string) (*exchangev1.Referral, error) {
		r, err := c.referrals().StartReferral(context.Background(), &exchangev1.StartReferralRequest{Name: n})
		return r.GetReferral(), err
	}},
	{"complete", "receiver", []exchangev1.ReferralState{stInProgress}, stCompleted, func(c as, n string) (*exchangev1.Referral, error) {
		r, err := c.referrals().CompleteReferral(context.Background(), &exchangev1.CompleteReferralRequest{Name: n,
			Outcome: &exchangev1.Outcome{Successful: true, Reason: "counselling delivered", ServicesDelivered: []exchangev1.Niche{exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING}}})
		return r.GetReferral(), err
	}},
	{"cancel", "sender", []exchangev1.ReferralState{stRequested, stReceived, stAccepted, stInProgress}, stCancelled, func(c as, n string) (*exchangev1.Referral, error) {
		r, err := c.referrals().CancelReferral(context.Background(), &exchangev1.CancelReferralRequest{Name: n, Reason: "person moved"})
		return r.GetReferral(), err
	}},
}

// pathTo lists the verbs that bring a new referral to a state.
var pathTo = map[exchangev1.ReferralState][]string{
	stRequested:  nil,
	stReceived:   {"acknowledge"},
	stAccepted:   {"acknowledge", "accept"},
	stRejected:   {"acknowledge", "reject"},
	stInProgress: {"acknowledge", "accept", "start"},
	stCompleted:  {"acknowledge", "accept", "start", "complete"},
	stCancelled:  {"cancel"},
}

func verbNamed(name string) verb {
	for _, v := range verbs {
		if v.name == name {
			return v
		}
	}
	panic(name)
}

func TestReferralLifecycleEveryTransitionByEverySide(t *testing.T) {
	_, sec, ilo, iom, unicef := threeAgencies(t)
	callers := map[string]as{"sender": ilo, "receiver": iom, "third agency": unicef, "secretariat": sec}
	reach := func(state exchangev1.ReferralState) *exchangev1.Referral {
		t.Helper()
		r := refer(t, ilo, "iom")
		for _, step := range pathTo[state] {
			v := verbNamed(step)
			c := iom
			if v.side == "sender" {
				c = ilo
			}
			if _, err := v.call(c, r.GetName()); err != nil {
				t.Fatalf("reaching %v by %s: %v", state, step, err)
			}
		}
		return r
	}
	allowed, refused := 0, 0
	for state := range pathTo {
		for _, v := range verbs {
			for who, c := range callers {
				r := reach(state)
				got, err := v.call(c, r.GetName())
				switch {
				case who == "third agency" || who == "secretariat":
					wantCode(t, err, codes.NotFound)
					refused++
				case who != v.side:
					wantCode(t, err, codes.PermissionDenied)
					refused++
				case !containsState(v.from, state):
					st := wantCode(t, err, codes.FailedPrecondition)
					if !strings.Contains(st.Message(), state.String()) {
						t.Errorf("%s in %v: message %q does not name the current state", v.name, state, st.Message())
					}
					refused++
				default:
					if err != nil {
						t.Fatalf("%s by %s in %v: %v", v.name, who, state, err)
					}
					if got.GetState() != v.to {
						t.Fatalf("%s in %v gave %v, want %v", v.name, state, got.GetState(), v.to)
					}
					last := got.GetHistory()[len(got.GetHistory())-1]
					if last.GetFromState() != state || last.GetToState() != v.to || last.GetActor() != c.agencyName() || last.GetTime() == nil {
						t.Errorf("history entry %v", last)
					}
					allowed++
				}
			}
		}
	}
	// 9 allowed moves (5 receiver verbs from one state each, cancel from 4).
	if allowed != 9 || refused != len(pathTo)*len(verbs)*len(callers)-9 {
		t.Fatalf("allowed %d, refused %d", allowed, refused)
	}
}

func containsState(list []exchangev1.ReferralState, s exchangev1.ReferralState) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRejectionAndOutcomeAreRequired(t *testing.T) {
	_, _, ilo, iom, _ := threeAgencies(t)
	r := refer(t, ilo, "iom")
	ctx := context.Background()
	if _, err := iom.referrals().AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: r.GetName()}); err != nil {
		t.Fatal(err)
	}
	_, err := iom.referrals().RejectReferral(ctx, &exchangev1.RejectReferralRequest{Name: r.GetName()})
	if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "rejection" {
		t.Errorf("violations %v", f)
	}
	_, err = iom.referrals().RejectReferral(ctx, &exchangev1.RejectReferralRequest{Name: r.GetName(), Rejection: &exchangev1.Rejection{Reason: exchangev1.RejectionReason_REJECTION_REASON_OTHER}})
	if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "rejection" {
		t.Errorf("other without details: violations %v", f)
	}
	_, err = iom.referrals().CompleteReferral(ctx, &exchangev1.CompleteReferralRequest{Name: r.GetName(), Outcome: &exchangev1.Outcome{}})
	if f := violatedFields(wantCode(t, err, codes.InvalidArgument)); len(f) != 1 || f[0] != "outcome.reason" {
		t.Errorf("outcome without reason: violations %v", f)
	}
}
