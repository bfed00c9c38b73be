package cli

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

const (
	testReferralID   = "01jd8x4k2m9q7r3t5v6w8y0z1a"
	testReferralName = "referrals/" + testReferralID
)

func TestReferralEnumNames(t *testing.T) {
	for _, e := range []enumNames{referralStateNames, urgencyNames, consentGiverNames, rejectionReasonNames, sexNames, pushStatusNames, eventKindNames} {
		values := e.desc.Values()
		for i := range values.Len() {
			n := values.Get(i).Number()
			if n == 0 {
				continue
			}
			if got, err := e.parse(e.name(n)); err != nil || got != n {
				t.Errorf("%s: parse(%q) = %v, %v", e.what, e.name(n), got, err)
			}
		}
	}
	want := map[string]string{
		"in-progress":            "REFERRAL_STATE_IN_PROGRESS",
		"best-interest-override": "CONSENT_GIVER_BEST_INTEREST_OVERRIDE",
		"unable-to-contact":      "REJECTION_REASON_UNABLE_TO_CONTACT",
	}
	for flag, enum := range want {
		found := false
		for _, e := range []enumNames{referralStateNames, consentGiverNames, rejectionReasonNames} {
			if n, err := e.parse(flag); err == nil && string(e.desc.Values().ByNumber(n).Name()) == enum {
				found = true
			}
		}
		if !found {
			t.Errorf("%s does not name %s", flag, enum)
		}
	}
	if got := strings.Join(rejectionReasonNames.values(), "|"); got != "no-capacity|outside-niche|outside-area|person-declined|unable-to-contact|other" {
		t.Errorf("rejection reasons %s", got)
	}
}

func TestReferralNamesInArguments(t *testing.T) {
	for _, arg := range []string{testReferralID, testReferralName, strings.ToUpper(testReferralID), " " + testReferralName} {
		opts, err := parse(t, newReferralsShowCmd, arg)
		if err != nil {
			t.Fatalf("%q: %v", arg, err)
		}
		if name, _ := referralName(opts.ID); name != testReferralName {
			t.Errorf("%q: name %q", arg, name)
		}
	}
	for _, bad := range []string{"01jd8x", "referrals/", "agencies/ilo", testReferralID + "x", "referrals/01jd8x4k2m9q7r3t5v6w8y0z1-"} {
		if _, err := parse(t, newReferralsShowCmd, bad); !isUsage(err) {
			t.Errorf("%q: got %v, want a usage error", bad, err)
		}
	}
	for _, newCmd := range []func(*app, func(*referralsVerbOptions) error) *cobra.Command{newReferralsAcknowledgeCmd, newReferralsAcceptCmd, newReferralsStartCmd} {
		opts, err := parse(t, newCmd, testReferralID)
		if err != nil || opts.ID != testReferralID || opts.Verb == "" {
			t.Errorf("verb: %+v, %v", opts, err)
		}
		if _, err := parse(t, newCmd); !isUsage(err) {
			t.Errorf("verb without ID: %v", err)
		}
	}
}

func TestReferralsListRequest(t *testing.T) {
	inbox := exchangev1.ReferralDirection_REFERRAL_DIRECTION_INBOX
	outbox := exchangev1.ReferralDirection_REFERRAL_DIRECTION_OUTBOX
	tests := []struct {
		name      string
		outbox    bool
		args      []string
		want      *exchangev1.ListReferralsRequest
		wantUsage bool
	}{
		{name: "inbox", want: &exchangev1.ListReferralsRequest{Direction: inbox}},
		{name: "outbox", outbox: true, want: &exchangev1.ListReferralsRequest{Direction: outbox}},
		{
			name: "every filter",
			args: []string{"--state", "in-progress", "--niche", "shelter", "--counterparty", "agencies/iom", "--overdue"},
			want: &exchangev1.ListReferralsRequest{
				Direction: inbox, State: exchangev1.ReferralState_REFERRAL_STATE_IN_PROGRESS,
				Niche: exchangev1.Niche_NICHE_SHELTER, Counterparty: "agencies/iom", OverdueOnly: true,
			},
		},
		{name: "counterparty id", outbox: true, args: []string{"--counterparty", "unicef", "--state", "REJECTED"},
			want: &exchangev1.ListReferralsRequest{Direction: outbox, Counterparty: "agencies/unicef", State: exchangev1.ReferralState_REFERRAL_STATE_REJECTED}},
		{name: "unknown state", args: []string{"--state", "open"}, wantUsage: true},
		{name: "bad counterparty", args: []string{"--counterparty", "I O M"}, wantUsage: true},
		{name: "argument", args: []string{"extra"}, wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newCmd := newReferralsInboxCmd
			if tt.outbox {
				newCmd = newReferralsOutboxCmd
			}
			opts, err := parse(t, newCmd, tt.args...)
			if tt.wantUsage {
				if !isUsage(err) {
					t.Fatalf("got %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			req, err := opts.request()
			if err != nil {
				t.Fatal(err)
			}
			equalProto(t, req, tt.want)
		})
	}
}

func TestReferralsRejectRequest(t *testing.T) {
	tests := []struct {
		args      []string
		want      *exchangev1.Rejection
		wantUsage bool
	}{
		{[]string{testReferralID, "--reason", "no-capacity"}, &exchangev1.Rejection{Reason: exchangev1.RejectionReason_REJECTION_REASON_NO_CAPACITY}, false},
		{[]string{testReferralName, "--reason", "outside-area", "--details", "we work in TH-10 only"},
			&exchangev1.Rejection{Reason: exchangev1.RejectionReason_REJECTION_REASON_OUTSIDE_AREA, Details: "we work in TH-10 only"}, false},
		{[]string{testReferralID, "--reason", "other", "--details", "paused"}, &exchangev1.Rejection{Reason: exchangev1.RejectionReason_REJECTION_REASON_OTHER, Details: "paused"}, false},
		{[]string{testReferralID, "--reason", "other"}, nil, true},
		{[]string{testReferralID}, nil, true},
		{[]string{testReferralID, "--reason", "busy"}, nil, true},
		{[]string{"--reason", "no-capacity"}, nil, true},
	}
	for _, tt := range tests {
		opts, err := parse(t, newReferralsRejectCmd, tt.args...)
		if tt.wantUsage {
			if !isUsage(err) {
				t.Errorf("%v: got %v, want a usage error", tt.args, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		name, rej, err := opts.request()
		if err != nil || name != testReferralName {
			t.Fatalf("%v: %q, %v", tt.args, name, err)
		}
		equalProto(t, rej, tt.want)
	}
}

func TestReferralsCompleteRequest(t *testing.T) {
	tests := []struct {
		args      []string
		want      *exchangev1.Outcome
		wantUsage bool
	}{
		{[]string{testReferralID, "--successful", "--reason", "reunited"}, &exchangev1.Outcome{Successful: true, Reason: "reunited"}, false},
		{[]string{testReferralID, "--unsuccessful", "--reason", "moved away", "--delivered", "shelter", "--delivered", "health,legal-aid"},
			&exchangev1.Outcome{Reason: "moved away", ServicesDelivered: []exchangev1.Niche{exchangev1.Niche_NICHE_SHELTER, exchangev1.Niche_NICHE_HEALTH, exchangev1.Niche_NICHE_LEGAL_AID}}, false},
		{[]string{testReferralID, "--reason", "x"}, nil, true},
		{[]string{testReferralID, "--successful", "--unsuccessful", "--reason", "x"}, nil, true},
		{[]string{testReferralID, "--successful"}, nil, true},
		{[]string{testReferralID, "--successful", "--reason", "x", "--delivered", "hugs"}, nil, true},
	}
	for _, tt := range tests {
		opts, err := parse(t, newReferralsCompleteCmd, tt.args...)
		if tt.wantUsage {
			if !isUsage(err) {
				t.Errorf("%v: got %v, want a usage error", tt.args, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		_, outcome, err := opts.request()
		if err != nil {
			t.Fatal(err)
		}
		equalProto(t, outcome, tt.want)
	}
}

func TestReferralsReasonVerbsParse(t *testing.T) {
	for _, newCmd := range []func(*app, func(*referralsReasonOptions) error) *cobra.Command{newReferralsCancelCmd, newReferralsRevokeConsentCmd} {
		opts, err := parse(t, newCmd, testReferralID, "--reason", "sent by mistake")
		if err != nil || opts.Reason != "sent by mistake" || opts.ID != testReferralID {
			t.Errorf("%+v, %v", opts, err)
		}
		if _, err := parse(t, newCmd, testReferralID); !isUsage(err) {
			t.Errorf("without --reason: %v", err)
		}
		if _, err := parse(t, newCmd, testReferralID, "--reason", "  "); !isUsage(err) {
			t.Errorf("blank --reason: %v", err)
		}
	}
}

func TestReferralsForwardRequest(t *testing.T) {
	consentAt := time.Date(2026, 3, 14, 9, 30, 0, 0, time.FixedZone("ICT", 7*3600))
	tests := []struct {
		name      string
		args      []string
		want      *exchangev1.ForwardReferralRequest
		wantUsage bool
	}{
		{
			name: "consent now",
			args: []string{testReferralID, "--to", "unicef", "--niche", "shelter", "--need", "safe shelter", "--consent-given-by", "guardian"},
			want: &exchangev1.ForwardReferralRequest{
				Name: testReferralName, Receiver: "agencies/unicef",
				Service: &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_SHELTER, Need: "safe shelter"},
				Consent: &exchangev1.Consent{
					GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_GUARDIAN, GivenTime: timestamppb.New(testNow),
					ReceivingAgency: "agencies/unicef", Services: []exchangev1.Niche{exchangev1.Niche_NICHE_SHELTER},
				},
			},
		},
		{
			name: "override with every flag",
			args: []string{testReferralName, "--to", "agencies/unicef", "--niche", "family-tracing", "--need", "trace family",
				"--consent-given-by", "best-interest-override", "--override-reason", "no guardian; case conference of 12 March",
				"--consent-time", "2026-03-14T09:30:00+07:00", "--urgency", "emergency", "--request-id", "fwd-2026-7"},
			want: &exchangev1.ForwardReferralRequest{
				Name: testReferralName, Receiver: "agencies/unicef",
				Service: &exchangev1.RequestedService{Niche: exchangev1.Niche_NICHE_FAMILY_TRACING, Need: "trace family"},
				Urgency: exchangev1.Urgency_URGENCY_EMERGENCY,
				Consent: &exchangev1.Consent{
					GivenBy: exchangev1.ConsentGiver_CONSENT_GIVER_BEST_INTEREST_OVERRIDE, GivenTime: timestamppb.New(consentAt),
					ReceivingAgency: "agencies/unicef", Services: []exchangev1.Niche{exchangev1.Niche_NICHE_FAMILY_TRACING},
					OverrideReason: "no guardian; case conference of 12 March",
				},
				RequestId: "fwd-2026-7",
			},
		},
		{name: "no to", args: []string{testReferralID, "--niche", "shelter", "--need", "x", "--consent-given-by", "person"}, wantUsage: true},
		{name: "no niche", args: []string{testReferralID, "--to", "unicef", "--need", "x", "--consent-given-by", "person"}, wantUsage: true},
		{name: "no need", args: []string{testReferralID, "--to", "unicef", "--niche", "shelter", "--consent-given-by", "person"}, wantUsage: true},
		{name: "no consent", args: []string{testReferralID, "--to", "unicef", "--niche", "shelter", "--need", "x"}, wantUsage: true},
		{name: "override without reason", args: []string{testReferralID, "--to", "unicef", "--niche", "shelter", "--need", "x", "--consent-given-by", "best-interest-override"}, wantUsage: true},
		{name: "reason without override", args: []string{testReferralID, "--to", "unicef", "--niche", "shelter", "--need", "x", "--consent-given-by", "person", "--override-reason", "x"}, wantUsage: true},
		{name: "bad time", args: []string{testReferralID, "--to", "unicef", "--niche", "shelter", "--need", "x", "--consent-given-by", "person", "--consent-time", "14/03/2026"}, wantUsage: true},
		{name: "bad request id", args: []string{testReferralID, "--to", "unicef", "--niche", "shelter", "--need", "x", "--consent-given-by", "person", "--request-id", "-x"}, wantUsage: true},
		{name: "unknown giver", args: []string{testReferralID, "--to", "unicef", "--niche", "shelter", "--need", "x", "--consent-given-by", "aunt"}, wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := parse(t, newReferralsForwardCmd, tt.args...)
			if tt.wantUsage {
				if !isUsage(err) {
					t.Fatalf("got %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			req, err := opts.request()
			if err != nil {
				t.Fatal(err)
			}
			equalProto(t, req, tt.want)
		})
	}
}

func TestReferralsSuggestPushWatchFlags(t *testing.T) {
	s, err := parse(t, newReferralsSuggestCmd, "--niche", "legal-aid", "--province", "kh-12")
	if err != nil {
		t.Fatal(err)
	}
	if niche, province, err := s.request(); err != nil || niche != exchangev1.Niche_NICHE_LEGAL_AID || province != "KH-12" {
		t.Errorf("suggest: %v %q %v", niche, province, err)
	}
	for _, bad := range [][]string{{"--niche", "legal-aid"}, {"--province", "KH-12"}, {"--niche", "legal-aid", "--province", "Phnom Penh"}} {
		if _, err := parse(t, newReferralsSuggestCmd, bad...); !isUsage(err) {
			t.Errorf("suggest %v: %v", bad, err)
		}
	}

	p, err := parse(t, newReferralsPushCmd, "-f", "x.jsonl")
	if err != nil || p.File != "x.jsonl" || p.BatchSize != 100 {
		t.Errorf("push defaults: %+v, %v", p, err)
	}
	if p, err = parse(t, newReferralsPushCmd, "--file", "-", "--batch-size", "500"); err != nil || p.File != "-" || p.BatchSize != 500 {
		t.Errorf("push: %+v, %v", p, err)
	}
	for _, bad := range [][]string{nil, {"-f", "x", "--batch-size", "0"}, {"-f", "x", "--batch-size", "501"}, {"x.jsonl"}} {
		if _, err := parse(t, newReferralsPushCmd, bad...); !isUsage(err) {
			t.Errorf("push %v: %v", bad, err)
		}
	}

	w, err := parse(t, newReferralsWatchCmd)
	if err != nil || w.From != 0 {
		t.Errorf("watch: %+v, %v", w, err)
	}
	if w, err = parse(t, newReferralsWatchCmd, "--from", "1234"); err != nil || w.From != 1234 {
		t.Errorf("watch --from: %+v, %v", w, err)
	}
	for _, bad := range [][]string{{"--from", "-1"}, {"--from", "yesterday"}} {
		if _, err := parse(t, newReferralsWatchCmd, bad...); !isUsage(err) {
			t.Errorf("watch %v: %v", bad, err)
		}
	}
	if _, err := parse(t, newReferralsStatsCmd, "extra"); !isUsage(err) {
		t.Errorf("stats with an argument: %v", err)
	}
}

// Long-running commands take no default time limit; a given --timeout
// still bounds them.
func TestLongRunningCommandsHaveNoDefaultTimeout(t *testing.T) {
	tests := []struct {
		path         []string
		flags        []string
		env          map[string]string
		wantDeadline bool
	}{
		{[]string{"agencies", "list"}, nil, nil, true},
		{[]string{"referrals", "inbox"}, nil, nil, true},
		{[]string{"referrals", "watch"}, nil, nil, false},
		{[]string{"referrals", "push"}, nil, nil, false},
		{[]string{"referrals", "watch"}, []string{"--timeout", "1m"}, nil, true},
		{[]string{"referrals", "push"}, nil, map[string]string{EnvTimeout: "10m"}, true},
		{[]string{"agencies", "list"}, []string{"--timeout", "0"}, nil, false},
	}
	for _, tt := range tests {
		e := newTestEnv(t)
		if tt.env != nil {
			e.vars = tt.env
		}
		a := newApp(e.Environment)
		root := newRootCmd(a)
		if err := root.PersistentFlags().Parse(tt.flags); err != nil {
			t.Fatal(err)
		}
		cmd, _, err := root.Find(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		cmd.SetContext(context.Background())
		if err := a.resolveGlobal(cmd); err != nil {
			t.Fatal(err)
		}
		_, has := cmd.Context().Deadline()
		if has != tt.wantDeadline {
			t.Errorf("%v %v %v: deadline %v, want %v", tt.path, tt.flags, tt.env, has, tt.wantDeadline)
		}
		a.close()
	}
}

func TestReadLine(t *testing.T) {
	in := "one\r\ntwo\n\n" + strings.Repeat("x", 50) + "\nlast"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)
	var got []string
	for {
		line, tooLong, err := readLine(r, 20)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if tooLong {
			got = append(got, "<too long>")
			continue
		}
		got = append(got, string(line))
	}
	if want := "one\r|two||<too long>|last"; strings.Join(got, "|") != want {
		t.Errorf("lines %q, want %q", strings.Join(got, "|"), want)
	}
}

func TestDerivedRequestIDIsStable(t *testing.T) {
	// The documented derivation, "jsonl-" and the first 40 hex digits of
	// the line's SHA-256, must never change: files pushed before would
	// send their referrals again.
	id := derivedRequestID([]byte(`{"referral":{}}`))
	if id != "jsonl-8a2bb32172363c8a9e80c4df96d78cfe5787f6c3" {
		t.Errorf("id %q", id)
	}
	if !requestIDPattern.MatchString(id) {
		t.Errorf("id %q is not a valid request id", id)
	}
	if derivedRequestID([]byte(`{"referral":{}}`)) != id || derivedRequestID([]byte(`{"referral": {}}`)) == id {
		t.Error("the id is not a function of the line's bytes")
	}
}

func TestReferralsEraseParse(t *testing.T) {
	opts, err := parse(t, newReferralsEraseCmd, testReferralID, "--reason-code", "person-request", "--reason", " asked at the office ", "--yes")
	if err != nil {
		t.Fatal(err)
	}
	req, err := opts.request()
	if err != nil {
		t.Fatal(err)
	}
	equalProto(t, req, &exchangev1.EraseReferralDetailsRequest{Name: testReferralName,
		ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST, Reason: "asked at the office"})
	if !opts.Yes {
		t.Error("--yes not taken")
	}
	for _, args := range [][]string{
		{testReferralID},
		{testReferralID, "--reason", "asked"},
		{testReferralID, "--reason-code", "retention"},
		{testReferralID, "--reason-code", "unspecified"},
		{"not-an-id", "--reason-code", "other"},
	} {
		if _, err := parse(t, newReferralsEraseCmd, args...); !isUsage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
