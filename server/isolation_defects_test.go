package server

// Focused tests for what the isolation matrix and the randomized model
// check found: each names one rule and fails while the server breaks it.

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// An agency that received a referral and forwarded it no longer sees the
// person's details once the original sender revokes consent — neither
// through the referral it received nor through the one it forwarded,
// which carries the same details (RevokeReferralConsent: "from now on the
// receiver (and any agency it forwarded to) no longer sees the identifying
// details").
func TestIsolationForwarderLosesDetailsWhenConsentIsRevoked(t *testing.T) {
	t.Parallel()
	_, _, ilo, iom, unicef := threeAgencies(t)
	ctx := context.Background()
	parent := refer(t, ilo, "iom")
	if _, err := iom.referrals().AcknowledgeReferral(ctx, &exchangev1.AcknowledgeReferralRequest{Name: parent.GetName()}); err != nil {
		t.Fatal(err)
	}
	fwd, err := iom.referrals().ForwardReferral(ctx, isoForward(parent.GetName(), "agencies/unicef"))
	if err != nil {
		t.Fatal(err)
	}
	child := fwd.GetReferral().GetName()
	if _, err := ilo.referrals().RevokeReferralConsent(ctx, &exchangev1.RevokeReferralConsentRequest{Name: parent.GetName(), Reason: "withdrawn by the guardian"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who  string
		conn as
		name string
	}{
		{"iom (receiver) through the referral it received", iom, parent.GetName()},
		{"unicef (forwarded to) through the forwarded referral", unicef, child},
		{"iom (receiver) through the referral it forwarded", iom, child},
	} {
		resp, err := c.conn.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: c.name})
		if err != nil {
			t.Fatalf("%s: %v", c.who, err)
		}
		if r := resp.GetReferral(); r.GetSubject() != nil || r.GetSealedDetails() != nil || !r.GetDetailsWithheld() {
			t.Errorf("%s: after ilo revoked consent on %s, GetReferral(%s) still shows subject %v, %d bytes of sealed details, details_withheld=%v",
				c.who, parent.GetName(), c.name, r.GetSubject(), len(r.GetSealedDetails()), r.GetDetailsWithheld())
		}
	}
}

// An observer of a contributor group reads the dataset but does not write
// rows: contributor_groups are "working groups whose members may write
// rows", an observer only "sees what is shared with the group", and
// GetDatasetCompleteness does not expect rows from observers.
func TestIsolationObserversOfContributorGroupsDoNotWrite(t *testing.T) {
	t.Parallel()
	_, _, ilo, iom, unicef, _ := planParties(t) // un-wg: ilo member, iom observer
	ctx := context.Background()
	d := returnsDataset()
	d.ContributorGroups = []string{"workingGroups/un-wg"}
	if _, err := unicef.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/unicef", DatasetId: "group-data", Dataset: d}); err != nil {
		t.Fatal(err)
	}
	if _, err := ilo.datasets().WriteDatasetRows(ctx, &exchangev1.WriteDatasetRowsRequest{Dataset: "agencies/unicef/datasets/group-data", Writes: []*exchangev1.RowWrite{{Row: isoRow("KH-12", 4)}}}); err != nil {
		t.Fatalf("a member of the contributor group: %v", err)
	}
	if _, err := iom.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: "agencies/unicef/datasets/group-data"}); err != nil {
		t.Fatalf("an observer of the contributor group reads the dataset: %v", err)
	}
	resp, err := iom.datasets().WriteDatasetRows(ctx, &exchangev1.WriteDatasetRowsRequest{Dataset: "agencies/unicef/datasets/group-data", Writes: []*exchangev1.RowWrite{{Row: isoRow("KH-12", 3)}}})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("iom, an observer of the contributor group, wrote rows: got %v (accepted %d), want PERMISSION_DENIED", status.Code(err), resp.GetAccepted())
	}
}

// A watch on a dataset's rows stops delivering rows once the watcher may
// no longer read the dataset: its audience narrowed, or the watcher left
// the contributor group it read through.
func TestIsolationRowWatchStopsWhenTheWatcherLosesAccess(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		narrow func(t *testing.T, sec, owner as)
	}{
		{"audience narrowed", func(t *testing.T, sec, owner as) {
			req := &exchangev1.UpdateDatasetRequest{Dataset: returnsDataset(), UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"audience"}}}
			req.Dataset.Name = "agencies/ilo/datasets/shared"
			if _, err := owner.datasets().UpdateDataset(bg(), req); err != nil {
				t.Fatal(err)
			}
		}},
		{"watcher removed from the working group", func(t *testing.T, sec, owner as) {
			if _, err := sec.dir.UpdateWorkingGroup(bg(), &exchangev1.UpdateWorkingGroupRequest{WorkingGroup: &exchangev1.WorkingGroup{
				Name: "workingGroups/un-wg", DisplayName: "UN", Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP,
			}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"members"}}}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, _, _, _, _, _ := planParties(t) // un-wg: ilo member, iom observer
			x.stop()
			x.serveWith(func(cfg *Config) { cfg.WatchHeartbeat = isoHeartbeat })
			sec, ilo, iom := x.asSecretariat(), x.asAgency("ilo"), x.asAgency("iom")
			d := returnsDataset()
			d.Audience = &exchangev1.Audience{WorkingGroups: []string{"workingGroups/un-wg"}}
			if _, err := ilo.datasets().CreateDataset(bg(), &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "shared", Dataset: d}); err != nil {
				t.Fatal(err)
			}
			wt := openWatch(iom, "agencies/iom", "rows", "agencies/ilo/datasets/shared", x.store.Revision())
			defer wt.cancel()
			write(t, ilo, "agencies/ilo/datasets/shared", isoRow("KH-12", 5))
			before, err := wt.drain(0)
			if err != nil || countRows(before) != 1 {
				t.Fatalf("while iom may read: %d rows, %v", countRows(before), err)
			}
			c.narrow(t, sec, ilo)
			if _, err := iom.datasets().GetDataset(bg(), &exchangev1.GetDatasetRequest{Name: "agencies/ilo/datasets/shared"}); status.Code(err) != codes.NotFound {
				t.Fatalf("after the change iom still reads the dataset: %v", err)
			}
			write(t, ilo, "agencies/ilo/datasets/shared", isoRow("KH-2", 6))
			after, err := wt.drain(0)
			if n := countRows(after); n > 0 {
				t.Errorf("iom may no longer read agencies/ilo/datasets/shared, but its open WatchDatasetRows delivered %d rows written after that (%v)", n, after[0].rows)
			} else if err != nil && status.Code(err) != codes.NotFound && status.Code(err) != codes.PermissionDenied {
				t.Errorf("the watch ended with %v, want NOT_FOUND (or nothing)", err)
			}
		})
	}
}

func countRows(msgs []isoWatchMsg) int {
	n := 0
	for _, m := range msgs {
		n += len(m.rows)
	}
	return n
}

// An agency suspended in the directory is refused at every call; a watch
// it opened before stops delivering (the same holds for a revoked
// certificate).
func TestIsolationWatchesStopWhenTheCallerIsSuspendedOrRevoked(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"agency suspended", "certificate revoked"} {
		t.Run(how, func(t *testing.T) {
			w := buildIsolationWorld(t)
			watcher := "agencies/ngo-kh"
			c := w.conn(watcher)
			rev := w.x.store.Revision()
			watches := []*isoWatch{
				openWatch(c, watcher, "referrals", "", rev),
				openWatch(c, watcher, "plans", "", rev),
				openWatch(c, watcher, "rows", "agencies/unicef/datasets/ds-groups", rev),
			}
			defer func() {
				for _, wt := range watches {
					wt.cancel()
				}
			}()
			time.Sleep(2 * isoHeartbeat)
			if how == "agency suspended" {
				if _, err := w.sec.dir.SuspendAgency(bg(), &exchangev1.SuspendAgencyRequest{Name: watcher, Reason: "membership lapsed"}); err != nil {
					t.Fatal(err)
				}
			} else if _, err := w.sec.certs.RevokeCertificate(bg(), &exchangev1.RevokeCertificateRequest{Name: "certificates/" + c.serial, Reason: "key lost"}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.dir.ListAgencies(bg(), &exchangev1.ListAgenciesRequest{}); err == nil {
				t.Fatalf("%s: a new call still succeeds", how)
			}
			// Changes the watcher saw until now: a referral it sent moves,
			// a plan shared with all members changes, a row is written.
			sent := ""
			for _, r := range w.referralNames() {
				if w.m.referrals[r].sender == watcher && w.m.referrals[r].state == rsRequested {
					sent = r
				}
			}
			w.move(w.m.referrals[sent].receiver, sent, rsReceived)
			for _, p := range w.planNames() {
				if pl := w.m.plans[p]; pl.owner == "agencies/moh-kh" && !pl.current().cancelled {
					w.updatePlan("agencies/moh-kh", p, pl.current().audience, "Changed while ngo-kh is out")
				}
			}
			w.writeRow("agencies/unicef", "agencies/unicef/datasets/ds-groups", "KH-2", 3)
			target := w.x.store.Revision()
			for _, wt := range watches {
				msgs, _ := wt.drain(target)
				for _, m := range msgs {
					if m.heartbeat && m.rows == nil {
						continue
					}
					t.Errorf("%s: %s delivered %s after the %s", how, wt, describeMsg(m), how)
				}
			}
		})
	}
}

func describeMsg(m isoWatchMsg) string {
	switch {
	case m.referral != nil:
		return "an event on " + m.referral.GetReferral().GetName()
	case m.plan != nil:
		return m.plan.GetKind().String() + " of " + m.plan.GetPlan().GetName()
	}
	return "rows"
}

// Creating a dataset does not reveal whether a dataset the caller cannot
// see exists (issue 6). Dataset ids used to be one namespace shared by all
// agencies, so creating one with the id of an invisible dataset answered
// ALREADY_EXISTS. Datasets are now named under their owner,
// agencies/{agency}/datasets/{id}, as plans are: an agency can create only
// under its own name, where any conflict is with its own data, and an
// attempt under another agency's name is refused the same way whether or
// not the id is taken there.
func TestIsolationCreateDatasetDoesNotRevealInvisibleDatasets(t *testing.T) {
	t.Parallel()
	_, _, ilo, iom, _ := threeAgencies(t)
	ctx := context.Background()
	if _, err := ilo.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "trafficking-cases-shan", Dataset: returnsDataset()}); err != nil {
		t.Fatal(err)
	}
	if _, err := iom.datasets().GetDataset(ctx, &exchangev1.GetDatasetRequest{Name: "agencies/ilo/datasets/trafficking-cases-shan"}); status.Code(err) != codes.NotFound {
		t.Fatalf("iom sees ilo's private dataset: %v", err)
	}
	resp, err := iom.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/iom", DatasetId: "trafficking-cases-shan", Dataset: returnsDataset()})
	if status.Code(err) == codes.AlreadyExists {
		t.Fatalf("CreateDataset by iom with the id of ilo's private dataset answers %v %q: the dataset's existence leaks (a missing id would be created)",
			status.Code(err), status.Convert(err).Message())
	}
	if err != nil {
		t.Fatalf("iom creating its own dataset with an id ilo also uses: %v", err)
	}
	if n := resp.GetDataset().GetName(); n != "agencies/iom/datasets/trafficking-cases-shan" {
		t.Errorf("iom's dataset is named %s, want agencies/iom/datasets/trafficking-cases-shan", n)
	}
	// Under another agency's name, a taken id and a free one answer alike.
	taken := &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "trafficking-cases-shan", Dataset: returnsDataset()}
	free := &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "never-made", Dataset: returnsDataset()}
	for _, validateOnly := range []bool{false, true} {
		taken.ValidateOnly, free.ValidateOnly = validateOnly, validateOnly
		_, errTaken := iom.datasets().CreateDataset(ctx, taken)
		_, errFree := iom.datasets().CreateDataset(ctx, free)
		if status.Code(errTaken) != codes.PermissionDenied || status.Code(errFree) != codes.PermissionDenied ||
			status.Convert(errTaken).Message() != status.Convert(errFree).Message() {
			t.Errorf("validate_only %v: iom creating under agencies/ilo: taken id %v, free id %v; want the same PERMISSION_DENIED", validateOnly, errTaken, errFree)
		}
	}
	// Reusing one's own id is the only conflict, and it reveals only one's
	// own dataset; validate_only answers as the real call would.
	for _, validateOnly := range []bool{true, false} {
		_, err := ilo.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "trafficking-cases-shan",
			Dataset: returnsDataset(), ValidateOnly: validateOnly})
		if status.Code(err) != codes.AlreadyExists {
			t.Errorf("validate_only %v: ilo creating a second dataset with its own id: %v, want ALREADY_EXISTS", validateOnly, err)
		}
	}
}
