package store

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// seedInbox creates n referrals from ilo to iom, every matchEvery-th of
// them for prevention and the others for shelter, and returns the names
// of the prevention ones, newest first (the order ListReferrals gives).
func seedInbox(t *testing.T, s *Store, n, matchEvery int) []string {
	t.Helper()
	ctx := t.Context()
	for _, id := range []string{"ilo", "iom"} {
		mustCreateAgency(t, s, id, agencyMsg(id, nil, nil))
	}
	blob := sealTestDetails(&exchangev1.ReferralDetails{Name: "s"})
	var matches []string
	const chunk = 200
	for i := 0; i < n; i += chunk {
		var items []NewReferral
		for j := i; j < min(n, i+chunk); j++ {
			niche := exchangev1.Niche_NICHE_SHELTER
			if j%matchEvery == 0 {
				niche = exchangev1.Niche_NICHE_PREVENTION
			}
			items = append(items, NewReferral{RequestID: fmt.Sprintf("r-%05d", j), Referral: &exchangev1.Referral{
				Receiver: "agencies/iom", SubjectReference: "s",
				Service:       &exchangev1.RequestedService{Niche: niche, Need: "help"},
				SealedDetails: blob,
			}})
		}
		res, err := s.CreateReferrals(ctx, Op{Actor: "agencies/ilo", Method: "test"}, items)
		if err != nil {
			t.Fatal(err)
		}
		for k, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if (i+k)%matchEvery == 0 {
				matches = append(matches, r.Referral.GetName())
			}
		}
	}
	slices.Reverse(matches)
	return matches
}

// TestFilteredPageVisitsAtMostTheBudget lists an inbox of 1,000 referrals
// with filters that match none of them and one in 97, counting the
// referrals each page hands to the filter: no page may visit more than
// scanBudget keys, paging on through pages that come back empty must end,
// and every match must come back exactly once, in order.
func TestFilteredPageVisitsAtMostTheBudget(t *testing.T) {
	s, _ := openTest(t)
	const n = 1000
	want := seedInbox(t, s, n, 97)
	for _, tc := range []struct {
		name  string
		size  int32
		niche exchangev1.Niche
		want  []string
	}{
		{"no match, size 10", 10, exchangev1.Niche_NICHE_LEGAL_AID, nil},
		{"no match, default size", 0, exchangev1.Niche_NICHE_LEGAL_AID, nil},
		{"one in 97, size 5", 5, exchangev1.Niche_NICHE_PREVENTION, want},
		{"one in 97, size 200", 200, exchangev1.Niche_NICHE_PREVENTION, want},
	} {
		t.Run(tc.name, func(t *testing.T) {
			budget := scanBudget(Page{Size: tc.size}.limit())
			if budget >= n {
				t.Fatalf("budget %d does not fall within %d referrals; the test proves nothing", budget, n)
			}
			visits := 0
			f := ReferralFilter{AgencyID: "iom", Inbox: true, Fingerprint: tc.niche.String(), Keep: func(r *exchangev1.Referral) bool {
				visits++
				return r.GetService().GetNiche() == tc.niche
			}}
			var got []string
			p := Page{Size: tc.size}
			pages, empty, total := 0, 0, 0
			for {
				pages++
				if pages > n {
					t.Fatal("paging does not end")
				}
				visits = 0
				items, next, _, err := s.ListReferrals(t.Context(), f, p)
				if err != nil {
					t.Fatal(err)
				}
				if visits > budget {
					t.Fatalf("page %d visited %d referrals, more than the budget of %d", pages, visits, budget)
				}
				total += visits
				if len(items) > p.limit() {
					t.Fatalf("page %d holds %d items, more than %d", pages, len(items), p.limit())
				}
				if len(items) == 0 && next != "" {
					empty++
				}
				got = append(got, names(items)...)
				if next == "" {
					break
				}
				// The token holds the last key visited, perhaps a record
				// the caller was not shown: it must not be readable. (The
				// key begins with the agency and a separator; three bytes
				// alone, "iom", turn up in a sealed token by chance, about
				// once in a thousand runs of this test.)
				if raw, err := base64.RawURLEncoding.DecodeString(next); err != nil || bytes.Contains(raw, []byte{'i', 'o', 'm', sep}) {
					t.Fatalf("page %d: token %q shows the key it resumes after (%v)", pages, next, err)
				}
				p.Token = next
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("pages gave %d referrals %v, want each of the %d matches exactly once, in order", len(got), got, len(tc.want))
			}
			// Each referral was visited once over all pages (the one
			// looked at ahead of a full page is visited again by the
			// next), so the budget cut the walk into pages rather than
			// skipping or repeating any part of it.
			if total < n || total > n+pages {
				t.Errorf("%d visits over %d pages for %d referrals", total, pages, n)
			}
			if tc.want == nil && empty == 0 {
				t.Errorf("no empty page with a next token: the budget did not cut the walk of %d referrals", n)
			}
			t.Logf("%d pages (%d empty with a next token), %d visits, budget %d per page", pages, empty, total, budget)
		})
	}
}

// TestScanBudget pins the budget the documentation states: twice the page
// size, and never fewer than 100 keys.
func TestScanBudget(t *testing.T) {
	for _, tt := range []struct{ limit, want int }{{1, 100}, {50, 100}, {100, 200}, {1000, 2000}} {
		if got := scanBudget(tt.limit); got != tt.want {
			t.Errorf("scanBudget(%d) = %d, want %d", tt.limit, got, tt.want)
		}
	}
}

// TestInboxPassesOverSentReferralsCheaply lists the inbox of an agency that
// sent 1,000 referrals and received none: its keys of sent referrals are
// turned down from the key alone, each counting a sixteenth of a visit,
// so one page of the default size passes over all 1,000 (its budget is
// 100 visits, 1,600 such keys) and ends the list.
func TestInboxPassesOverSentReferralsCheaply(t *testing.T) {
	s, _ := openTest(t)
	seedInbox(t, s, 1000, 97)
	visits := 0
	f := ReferralFilter{AgencyID: "ilo", Inbox: true, Keep: func(*exchangev1.Referral) bool { visits++; return true }}
	items, next, _, err := s.ListReferrals(t.Context(), f, Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 0 || next != "" || visits != 0 {
		t.Errorf("ilo's inbox: %d referrals, next token %q, %d referrals read; want one empty last page that read none", len(items), next, visits)
	}
	// Its outbox is read record by record, within the budget.
	f.Inbox, f.Outbox = false, true
	items, next, _, err = s.ListReferrals(t.Context(), f, Page{})
	if err != nil || len(items) != DefaultPageSize || next == "" {
		t.Errorf("ilo's outbox: %d referrals, next %q, %v; want a full page and more", len(items), next, err)
	}
}
